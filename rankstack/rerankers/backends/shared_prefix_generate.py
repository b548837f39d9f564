"""Sampling many short completions of prompts that share a long prefix, at the FLOP floor.

Writing synthetic queries (InPars) gives a causal LM thousands of prompts that are the same
few-shot examples followed by one passage, and asks for a short line back. ``model.generate``
spends most of its time on work it need not do there: it runs the few-shot prefix again for
every prompt, runs every prompt ``n`` times for ``n`` samples, and keeps decoding every row of a
batch until the last row stops. :func:`generate_shared_prefix` does each once:

1. the prompts' longest common token prefix runs once (batch 1) into a KV cache;
2. each batch's suffixes (left-padded between the prefix and the suffix, masked) run once
   against that cache, expanded to the batch;
3. the cache is then repeated ``n`` times for the samples, so the ``n`` samples of a prompt
   share one prefill;
4. decoding drops a row from the batch (and its KV cache) as soon as it emits a stop token (a
   token whose text holds a stop string such as a newline) or end of sequence.

Results are :class:`~rankstack.rerankers.backends.base.Completion` objects, as
``Backend.generate`` returns: text (cut at the stop string), the sampled tokens' log-probs
(fp32 log-softmax of the raw logits, before temperature, as the hf backend reports them) and
the finish reason. Greedy output equals ``model.generate``'s (tested); sampled output is a
different but equally valid draw (the random stream differs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rankstack.rerankers.backends.base import Completion, SamplingParams

log = logging.getLogger(__name__)


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all ``seqs`` share."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for j in range(n):
        t = first[j]
        if any(s[j] != t for s in seqs[1:]):
            return j
    return n


def stop_token_ids(tokenizer, stops: Sequence[str]) -> set[int]:
    """Every vocabulary id whose decoded text contains one of ``stops`` (e.g. each token that
    holds a newline), plus the special end tokens: a row that samples one is finished."""
    ids = {i for i in (tokenizer.eos_token_id, getattr(tokenizer, "pad_token_id", None)) if i is not None}
    if stops:
        for tid in range(len(tokenizer)):
            text = tokenizer.decode([tid])
            if any(s in text for s in stops):
                ids.add(tid)
    return ids


def _cache_of(output):
    """The KV cache a forward pass returned (``cache`` or, in older transformers, ``past_key_values``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _sample(logits, params: SamplingParams, generator):
    """Next tokens (greedy, or temperature / top-k / top-p sampling) and their log-probs."""
    import torch

    lp = torch.log_softmax(logits.float(), dim=-1)
    if params.temperature <= 0:
        nxt = lp.argmax(-1)
    else:
        scaled = logits.float() / params.temperature
        if params.top_k and params.top_k > 0:
            kth = torch.topk(scaled, min(params.top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        if params.top_p < 1.0:
            srt, order = torch.sort(scaled, descending=True, dim=-1)
            cum = torch.softmax(srt, dim=-1).cumsum(-1)
            drop = cum - torch.softmax(srt, dim=-1) > params.top_p  # keep the smallest set reaching top_p
            srt = srt.masked_fill(drop, float("-inf"))
            scaled = torch.full_like(scaled, float("-inf")).scatter(-1, order, srt)
        nxt = torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=generator).squeeze(-1)
    return nxt, lp.gather(-1, nxt[:, None]).squeeze(-1)


class SharedPrefixGenerator:
    """Batched sampling for prompts (token ids) that share a prefix; see the module docstring.

    Args:
        model: a transformers causal LM (eval mode).
        tokenizer: its tokenizer (stop tokens, decoding).
        batch_size: prompts per batch (rows decoded together: ``batch_size * n``).
        device: where the model is.
    """

    def __init__(self, model, tokenizer, batch_size: int = 32, device: str | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, int(batch_size))
        self.device = device or str(next(model.parameters()).device)
        self._stops: dict[tuple[str, ...], set[int]] = {}
        #: tokens run through the model: ``prefill`` (prefix + suffixes) and ``decoded``
        self.tokens = {"prefix": 0, "suffix": 0, "decoded": 0}
        import inspect

        # transformers renamed ``past_key_values`` to ``cache``: pass whichever this version takes
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    def _stop_ids(self, stops: tuple[str, ...]) -> set[int]:
        if stops not in self._stops:
            self._stops[stops] = stop_token_ids(self.tokenizer, stops)
        return self._stops[stops]

    def generate(self, encoded: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions of every prompt in ``encoded`` (token ids), in order.

        Args:
            encoded: the prompts, rendered and tokenized.
            params: sampling parameters (``stop`` strings end a row; ``seed`` seeds the draw).

        Returns:
            One list of ``params.n`` completions per prompt.
        """
        import torch

        if not encoded:
            return []
        # at least one suffix token per prompt: the last prompt token must run to give logits
        n_prefix = min(common_prefix_len(encoded), min(len(e) for e in encoded) - 1)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(params.seed if params.seed is not None else 0)
        out: list[list[Completion]] = [[] for _ in encoded]
        prefix_cache = self._prefix(encoded[0][:n_prefix]) if n_prefix else None
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths pad less
        for s in range(0, len(order), self.batch_size):
            idx = order[s: s + self.batch_size]
            comps = self._batch([encoded[i][n_prefix:] for i in idx], n_prefix, prefix_cache, params, gen)
            for j, i in enumerate(idx):
                out[i] = comps[j * params.n: (j + 1) * params.n]
        return out

    def _prefix(self, prefix: list[int]):
        import torch

        self.tokens["prefix"] += len(prefix)
        with torch.inference_mode():
            res = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True,
                             logits_to_keep=1)
        return _cache_of(res)

    def _batch(self, suffixes: list[list[int]], n_prefix: int, prefix_cache, params: SamplingParams, gen):
        import copy

        import torch

        b, width = len(suffixes), max(len(x) for x in suffixes)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in suffixes], device=self.device)
        mask = torch.tensor([[1] * n_prefix + [0] * (width - len(x)) + [1] * len(x) for x in suffixes],
                            device=self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, n_prefix:]
        self.tokens["suffix"] += sum(len(x) for x in suffixes)
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(b)
        with torch.inference_mode():
            res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                             **{self._cache_kw: cache})
            cache, logits = _cache_of(res), res.logits[:, -1]
            if params.n > 1:
                cache.batch_repeat_interleave(params.n)
                logits = logits.repeat_interleave(params.n, dim=0)
                mask = mask.repeat_interleave(params.n, dim=0)
            return self._decode(cache, logits, mask, params, gen)

    def _decode(self, cache, logits, mask, params: SamplingParams, gen) -> list[Completion]:
        import torch

        rows = logits.shape[0]
        live = list(range(rows))  # row of the original batch held at each cache position
        toks: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        finish = ["length"] * rows
        stop_ids = self._stop_ids(tuple(params.stop))
        last = mask.sum(-1) - 1  # position of each row's last token
        for step in range(params.max_new_tokens):
            nxt, lp = _sample(logits, params, gen)
            self.tokens["decoded"] += len(live)
            keep = []
            for j, (t, p) in enumerate(zip(nxt.tolist(), lp.tolist())):
                r = live[j]
                toks[r].append(t)
                lps[r].append(p)
                if t in stop_ids:
                    finish[r] = "stop"
                else:
                    keep.append(j)
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) < len(live):
                sel = torch.tensor(keep, device=logits.device)
                cache.batch_select_indices(sel)
                mask, last, nxt = mask[sel], last[sel], nxt[sel]
                live = [live[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
            last = last + 1
            res = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None],
                             use_cache=True, **{self._cache_kw: cache})
            cache, logits = _cache_of(res), res.logits[:, -1]
        return [self._completion(toks[r], lps[r], finish[r], params.stop) for r in range(rows)]

    def _completion(self, toks: list[int], lps: list[float], finish: str, stops) -> Completion:
        from rankstack.rerankers.backends.base import tokens_for_text

        special = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        if toks and toks[-1] in special:
            toks, lps = toks[:-1], lps[:-1]
        decode = lambda x: self.tokenizer.decode(x, skip_special_tokens=True)  # noqa: E731
        text = decode(toks)
        for st in stops:
            j = text.find(st)
            if j >= 0:
                text, finish = text[:j], "stop"
                k = tokens_for_text(decode, toks, text)
                toks, lps = toks[:k], lps[:k]
        return Completion(text, lps, self.tokenizer.convert_ids_to_tokens(toks), finish)
