"""transformers backend: causal LMs from a hub id, a local folder or a GGUF file.

- prompts rendered with the model's chat template;
- length-sorted batches with left padding;
- the scored position's output layer computed in fp32 even when the decoder runs in bf16
  (bf16 logits round to steps of 0.06-0.125 and create ties);
- ``prefix_reuse``: prompts are grouped into families by their shared token prefix (system
  prompt + instruction + query); a family's prefix runs once and its prompts, length-sorted,
  run in batches against a copy of that KV cache, so each prompt pays only for its own tokens.
  Scores equal the plain padded path to ~1e-5 (fp32).
- ``dtype``: ``auto`` = bf16 on CUDA; on CPU :func:`rankstack.hardware.default_cpu_dtype`, which
  reads the CPU flags: bf16 where the CPU has native bf16 instructions (``avx512_bf16``,
  ``amx_bf16``), fp32 elsewhere (there torch emulates bf16, slower than fp32;
  ``benchmarks/cpu_dtype.py`` measures both). Pass ``dtype="float32"`` for scores that must
  not depend on the CPU kind. ``threads`` sets torch's CPU threads; without it, on CPU, at most
  :func:`rankstack.hardware.default_threads` (the cores free at start: on a shared machine
  fewer threads are faster).
- attention through PyTorch's SDPA kernels (``attn_implementation="sdpa"``).
- batches are cut by prompts (``batch_size``), by padded tokens (``max_batch_tokens``: a GPU
  takes as many prompts as fit a token budget, 32,768 by default) and by padding waste
  (``max_pad_ratio``); defaults differ on CPU (8 prompts, no token budget, 1.25) and GPU (256,
  32,768, 1.5). Generation batches count, per sequence, the prompt plus ``max_new_tokens``
  against the same budget (the KV cache they will hold).
- on a GPU nothing is copied per prompt: a batch's ids go over in one copy, every index stays on
  the device, and a call's log-probs come back in one copy at its end (generation: one per batch).
- ``stats`` counts forward passes, real and padded tokens, and attention pairs (the sum over
  computed tokens of the context each attends to), from which a benchmark computes FLOPs.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rankstack.rerankers.backends.base import (Backend, BackendError, Completion, Prompt, SamplingParams,
                                               token_memo, tokens_for_text)
from rankstack.rerankers.backends.text import TokenizerText

log = logging.getLogger(__name__)


def _dtype(name):
    import torch

    if name is None or name == "auto":
        return None
    return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float16": torch.float16, "fp16": torch.float16}[name] if isinstance(name, str) else name


class HFBackend(TokenizerText, Backend):
    """A causal LM run in this process with transformers (see the module docstring for the options)."""

    name = "hf"

    def __init__(self, model: str = "smollm2-135m", device: str | None = None, dtype: str | None = "auto",
                 batch_size: int | None = None, threads: int | None = None, prefix_reuse: bool = True,
                 max_length: int | None = None, model_obj=None, tokenizer=None, min_prefix: int = 16,
                 max_pad_ratio: float | None = None, max_batch_tokens: int | None = None,
                 attn_implementation: str | None = "sdpa"):
        import torch

        from rankstack.hardware import default_cpu_dtype, set_torch_threads
        from rankstack.models import folder_digest, load_causal_lm, weights_digest

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        gpu = str(self.device).startswith("cuda")
        self.threads = set_torch_threads(threads) if threads or not gpu else torch.get_num_threads()
        self.dtype = _dtype(dtype) or _dtype("bfloat16" if gpu else default_cpu_dtype())
        if model_obj is not None and (dtype is None or dtype == "auto"):
            self.dtype = next(model_obj.parameters()).dtype  # a loaded model runs as it is
        if model_obj is not None:
            self.model, self.tokenizer = model_obj, tokenizer
            self.model.to(self.device)
            if attn_implementation and hasattr(self.model, "set_attn_implementation"):
                self.model.set_attn_implementation(attn_implementation)
        else:
            self.model, self.tokenizer = load_causal_lm(model, dtype=self.dtype, device=self.device,
                                                        attn_implementation=attn_implementation)
        # a model object passed in is named by its weights, so two different objects never share cached scores
        self.model_id = str(model) if model_obj is None else f"{model}:{weights_digest(self.model)}"
        if model_obj is None and os.path.isdir(str(model)):  # a local folder (a trained adapter) may be rewritten
            self.model_id = f"{model}@{folder_digest(str(model))}"
        self.batch_size = int(batch_size or (256 if gpu else 8))
        self.max_batch_tokens = max_batch_tokens if max_batch_tokens is not None else (32768 if gpu else None)
        self.prefix_reuse = prefix_reuse
        self._max_length = max_length
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.min_prefix = min_prefix  # shorter shared prefixes are not worth a separate KV pass
        # padded tokens / real tokens allowed in a batch (padding is compute thrown away on a CPU)
        self.max_pad_ratio = max_pad_ratio or (1.5 if gpu else 1.25)
        self._head_w = None
        self.stats: Counter = Counter()

    def fingerprint(self) -> str:
        return f"hf:{self.model_id}:{str(self.dtype).replace('torch.', '')}"

    @property
    def context_length(self) -> int:
        if self._max_length:
            return self._max_length
        n = getattr(self.model.config, "max_position_embeddings", None) or 8192
        return int(min(n, 32768))

    # --- scoring -----------------------------------------------------------------------
    def _head_fp32(self, h):
        """Output layer in fp32 at the scored positions only (bf16 logits would create ties)."""
        import torch

        if self._head_w is None:
            w = self.model.get_output_embeddings().weight
            self._head_w = w if w.dtype == torch.float32 else w.detach().float()
        with torch.inference_mode():
            return torch.log_softmax(torch.nn.functional.linear(h.float(), self._head_w), dim=-1)

    def _padded_hidden(self, batch_ids: list[list[int]], take: list[list[int]] | None = None):
        """Left-padded batch, no prefix sharing: the decoder's hidden states at positions ``take[i]``
        of each sequence (default: its last position), rows concatenated in order."""
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in batch_ids)
        # built on the host as one tensor, sent in one copy
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch_ids], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch_ids], dtype=torch.long)
        self._count(batch_ids, width)
        ids, mask = ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        take = take or [[len(x) - 1] for x in batch_ids]
        rows = [i for i, t in enumerate(take) for _ in t]
        cols = [width - len(x) + p for x, t in zip(batch_ids, take) for p in t]
        with torch.inference_mode():
            out = self.model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
            return out.last_hidden_state[rows, cols]

    def _padded_logprobs(self, batch_ids: list[list[int]]):
        """Log-probs (fp32, full vocab) after each sequence of a left-padded batch."""
        return self._head_fp32(self._padded_hidden(batch_ids))

    def _count(self, seqs: list[list[int]], width: int, prefix: int = 0) -> None:
        """Forward passes, real and padded tokens, attention pairs (each computed token attends
        to the ``prefix`` plus its own sequence up to itself)."""
        st = self.stats
        st["forward_passes"] += 1
        st["forward_tokens"] += sum(len(x) for x in seqs)
        st["padded_tokens"] += width * len(seqs)
        st["attention_pairs"] += sum(len(x) * prefix + len(x) * (len(x) + 1) // 2 for x in seqs)

    def _prefix_cache(self, prefix: list[int]):
        """KV cache of ``prefix`` (batch 1), computed once per family of prompts."""
        import torch

        self._count([prefix], len(prefix))
        with torch.inference_mode():
            out = self.model.get_decoder()(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
        return getattr(out, "cache", None) or out.past_key_values

    def _suffix_hidden(self, prefix_cache, n: int, suffixes: list[list[int]], take: list[list[int]] | None = None):
        """Every suffix against a copy of the prefix's KV cache (right padding keeps the prefix at
        positions 0..n-1): each prompt pays only for its own tokens. Hidden states at positions
        ``take[i]`` (whole-sequence coordinates, all >= ``n``; default: the last), rows concatenated."""
        import copy

        import torch

        dec = self.model.get_decoder()
        pad = self.tokenizer.pad_token_id
        b = len(suffixes)
        width = max(len(s) for s in suffixes)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], dtype=torch.long)
        mask = torch.tensor([[1] * (n + len(s)) + [0] * (width - len(s)) for s in suffixes], dtype=torch.long)
        take = take or [[n + len(s) - 1] for s in suffixes]
        rows = [i for i, t in enumerate(take) for _ in t]
        cols = [p - n for t in take for p in t]
        self._count(suffixes, width, prefix=n)
        dev = self.device
        ids, mask = (t.to(dev, non_blocking=True) for t in (ids, mask))
        pos = torch.arange(n, n + width, device=dev).unsqueeze(0).expand(b, -1)
        cache = copy.deepcopy(prefix_cache)
        if b > 1:
            cache.batch_repeat_interleave(b)
        with torch.inference_mode():
            out = dec(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **{_cache_kwarg(dec): cache})
            return out.last_hidden_state[rows, cols]

    def _suffix_logprobs(self, prefix_cache, n: int, suffixes: list[list[int]]):
        """Log-probs (fp32, full vocab) after each suffix, run against the prefix's KV cache."""
        return self._head_fp32(self._suffix_hidden(prefix_cache, n, suffixes))

    def _last_logprobs(self, batch_ids: list[list[int]]):
        """Full-vocabulary log-probs (fp32) after each sequence of one batch (kept for callers)."""
        n = _common_prefix_len(batch_ids) if len(batch_ids) > 1 else 0
        n = min(n, min(len(x) for x in batch_ids) - 1)
        if self.prefix_reuse and n >= self.min_prefix:
            return self._suffix_logprobs(self._prefix_cache(batch_ids[0][:n]), n, [x[n:] for x in batch_ids])
        return self._padded_logprobs(batch_ids)

    def _plan(self, encoded: list[list[int]], limits: Sequence[int] | None = None):
        """Batches as ``(indices, prefix_len)``; ``prefix_len`` 0 means a plain left-padded batch.
        ``limits[i]``: the longest shared prefix sequence ``i`` may run against (default: all but its
        last token; a continuation's first scored position must stay in the suffix).

        With ``prefix_reuse``, prompts are sorted as token sequences, so prompts sharing a prefix
        sit together; the sorted list is split into *families* (e.g. all passages of one query:
        same system prompt + query) by their longest shared prefix. A family's prefix runs once
        and its prompts, length-sorted, run in batches against that prefix's KV cache. Prompts
        left in small families go to ordinary length-sorted padded batches.
        """
        bs = self.batch_size
        if not self.prefix_reuse or len(encoded) < 2:
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
            return [(b, 0) for b in self._chunk(order, [len(x) for x in encoded])]
        order = sorted(range(len(encoded)), key=lambda i: encoded[i])
        lcp = [0] + [_common_prefix_len([encoded[order[j - 1]], encoded[order[j]]]) for j in range(1, len(order))]
        families: list[tuple[list[int], int]] = []

        def split(lo: int, hi: int) -> None:
            if hi - lo < 2:
                families.append((order[lo:hi], 0))
                return
            c = min(lcp[lo + 1: hi])
            cuts = [j for j in range(lo + 1, hi) if lcp[j] == c]
            n_children = len(cuts) + 1
            if hi - lo > bs and (hi - lo) / n_children >= max(2.0, bs / 2):
                for a, b in zip([lo, *cuts], [*cuts, hi]):
                    split(a, b)
            else:
                families.append((order[lo:hi], c))

        split(0, len(order))
        limits = limits if limits is not None else [len(x) - 1 for x in encoded]
        plan, rest = [], []
        for idx, c in families:
            n = min(c, min(limits[i] for i in idx)) if idx else 0
            if len(idx) >= max(2, min(bs, 4)) and n >= self.min_prefix:
                idx = sorted(idx, key=lambda i: len(encoded[i]))
                plan += [(b, n) for b in self._chunk(idx, [len(x) - n for x in encoded], prefix=n)]
            else:
                rest += idx
        rest.sort(key=lambda i: len(encoded[i]))
        plan += [(b, 0) for b in self._chunk(rest, [len(x) for x in encoded])]
        return plan

    def _chunk(self, order: list[int], lengths: list[int], prefix: int = 0) -> list[list[int]]:
        """Cut length-sorted indices into batches of at most ``batch_size`` prompts whose padded
        size stays within ``max_pad_ratio`` of their real tokens and, with ``max_batch_tokens``,
        whose padded tokens (plus the ``prefix`` each one attends to) stay within that budget."""
        out: list[list[int]] = []
        cur: list[int] = []
        real = 0
        budget = self.max_batch_tokens
        for i in order:
            n = lengths[i]
            if cur and (len(cur) >= self.batch_size or n * (len(cur) + 1) > self.max_pad_ratio * (real + n)
                        or (budget is not None and (n + prefix) * (len(cur) + 1) > budget)):
                out.append(cur)
                cur, real = [], 0
            cur.append(i)
            real += n
        if cur:
            out.append(cur)
        return out

    def _run_plan(self, encoded: list[list[int]], take: list[list[int]] | None = None,
                  limits: Sequence[int] | None = None):
        """Yield ``(indices, hidden states)`` per batch, reusing one prefix cache per family: the
        states at positions ``take[i]`` of each sequence (default: its last), rows concatenated."""
        cached_prefix, cache = None, None
        for idx, n in self._plan(encoded, limits):
            sub = [take[i] for i in idx] if take is not None else None
            if n:
                prefix = encoded[idx[0]][:n]
                if prefix != cached_prefix:
                    cached_prefix, cache = prefix, self._prefix_cache(prefix)
                yield idx, self._suffix_hidden(cache, n, [encoded[i][n:] for i in idx], sub)
            else:
                yield idx, self._padded_hidden([encoded[i] for i in idx], sub)

    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        import torch

        cand = torch.tensor([self.token_id(c) for c in candidates], dtype=torch.long, device=self.device)
        encoded = self.encode_many(prompts)
        out = np.zeros((len(prompts), len(cand)), dtype=np.float32)
        order, parts = [], []
        for idx, h in self._run_plan(encoded):  # results stay on the device until the call ends
            order += idx
            parts.append(self._head_fp32(h).index_select(1, cand))
        if parts:
            out[order] = torch.cat(parts).cpu().numpy()
        return out

    def next_token_logprobs_full(self, prompts: Sequence[Prompt]) -> np.ndarray:
        """Full-vocabulary next-token log-probs (for callers that need many candidates)."""
        encoded = self.encode_many(prompts)
        out = None
        for idx, h in self._run_plan(encoded):
            lp = self._head_fp32(h).cpu().numpy()
            if out is None:
                out = np.zeros((len(prompts), lp.shape[1]), dtype=np.float32)
            out[idx] = lp
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def continuation_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Teacher-forced log-probs of each continuation's tokens after its rendered prompt, one
        forward pass per pair, batched and prefix-shared like :meth:`next_token_logprobs` (the
        shared prefix stops before each prompt's last token, so every scored position is computed
        in the batch); the fp32 head runs at the continuation's positions only. The continuation
        is tokenized on its own (no special tokens) and appended to the prompt's tokens."""
        import torch

        if len(prompts) != len(continuations):
            raise BackendError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        heads = self.encode_many(prompts)
        tails = token_memo(self).lookup(list(continuations), self.tokenize_texts) if len(prompts) else []
        out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(prompts)
        live = [i for i, t in enumerate(tails) if t]  # an empty continuation has no tokens to score
        for i in live:
            if not heads[i]:
                raise BackendError("continuation_logprobs: a prompt rendered to no tokens; nothing predicts the "
                                   "continuation's first token")
        encoded = [heads[i] + tails[i] for i in live]
        take = [list(range(len(heads[i]) - 1, len(heads[i]) + len(tails[i]) - 1)) for i in live]
        limits = [len(heads[i]) - 1 for i in live]
        for idx, h in self._run_plan(encoded, take, limits):
            lp = self._head_fp32(h)
            target = torch.tensor([t for j in idx for t in tails[live[j]]], device=lp.device)
            vals = lp.gather(1, target.unsqueeze(1)).squeeze(1).cpu().numpy().astype(np.float32)
            pos = 0
            for j in idx:
                n = len(tails[live[j]])
                out[live[j]] = vals[pos: pos + n]
                pos += n
        return out

    def _batches(self, encoded: list[list[int]]):
        """Index batches in the order they run (see :meth:`_plan`)."""
        for idx, _ in self._plan(encoded):
            yield idx

    # --- generation ----------------------------------------------------------------------
    def _stop_criteria(self, stop: tuple[str, ...]):
        """A StopStringCriteria per stop tuple, built once (building one reads and sorts the whole
        vocabulary: ~1 s per ``generate`` call for a 49k vocabulary)."""
        from transformers import StoppingCriteriaList, StopStringCriteria

        cache = self.__dict__.setdefault("_stop_cache", {})
        if stop not in cache:
            cache[stop] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(stop))])
        return cache[stop]

    def _generate_batches(self, lengths: list[int], params: SamplingParams) -> list[tuple[int, list[int]]]:
        """``(offset, indices)`` of length-sorted generation batches: at most ``batch_size``
        sequences (``n`` per prompt) and, with ``max_batch_tokens``, at most that many tokens of
        KV cache (prompt width + ``max_new_tokens``, per sequence)."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        bs = max(1, self.batch_size // max(1, params.n))
        budget = self.max_batch_tokens
        out: list[tuple[int, list[int]]] = []
        cur: list[int] = []
        for pos, i in enumerate(order):
            rows = (len(cur) + 1) * params.n
            if cur and (len(cur) >= bs or (budget is not None and (lengths[i] + params.max_new_tokens) * rows > budget)):
                out.append((pos - len(cur), cur))
                cur = []
            cur.append(i)
        if cur:
            out.append((len(order) - len(cur), cur))
        return out

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams()) -> list[list[Completion]]:
        import torch

        encoded = self.encode_many(prompts)
        results: list[list[Completion]] = [[] for _ in prompts]
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        for s, idx in self._generate_batches([len(x) for x in encoded], params):
            width = max(len(encoded[i]) for i in idx)
            ids = torch.tensor([[pad] * (width - len(encoded[i])) + encoded[i] for i in idx], dtype=torch.long)
            mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in idx], dtype=torch.long)
            kwargs = dict(max_new_tokens=params.max_new_tokens, num_return_sequences=params.n,
                          return_dict_in_generate=True, output_logits=True, pad_token_id=pad)
            if params.temperature > 0:
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                              top_k=params.top_k if params.top_k > 0 else None)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if params.stop:
                kwargs.update(stopping_criteria=self._stop_criteria(tuple(params.stop)))
            if params.seed is not None:
                torch.manual_seed(params.seed + s)
            with torch.inference_mode():
                out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
            new = out.sequences[:, width:]
            # log-prob of each generated token from the raw logits, one step at a time (an fp32
            # copy of every step's logits at once would double the largest tensor of the call)
            lps = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(-1, new[:, t: t + 1]).squeeze(-1)
                               for t, step in enumerate(out.logits)], dim=1)
            new_rows, lp_rows = new.tolist(), lps.tolist()  # one copy per batch, not one per token
            for row in range(len(new_rows)):
                toks, tlps = [], []
                finish = "length"
                for t, tid in enumerate(new_rows[row]):
                    if tid == eos:
                        finish = "stop"
                        break
                    if tid == pad and pad != eos and t > 0:
                        finish = "stop"
                        break
                    toks.append(tid)
                    tlps.append(lp_rows[row][t])
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                for st in params.stop:
                    j = text.find(st)
                    if j >= 0:
                        text, finish = text[:j], "stop"
                        k = tokens_for_text(lambda x: self.tokenizer.decode(x, skip_special_tokens=True), toks, text)
                        toks, tlps = toks[:k], tlps[:k]  # the stop string's tokens are not the completion's
                pieces = self.tokenizer.convert_ids_to_tokens(toks)
                results[idx[row // params.n]].append(Completion(text, tlps, pieces, finish))
        return results


def _common_prefix_len(seqs: list[list[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for j in range(n):
        t = first[j]
        for s in seqs[1:]:
            if s[j] != t:
                return j
    return n


def _cache_kwarg(module) -> str:
    """transformers renamed ``past_key_values`` to ``cache``; use whichever this version takes."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
