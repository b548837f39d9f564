"""vLLM's offline engine (GPU): continuous batching and automatic prefix caching.

Install with ``pip install 'rankstack[vllm]'`` on a machine with a CUDA GPU. Prompts are rendered
with the model's chat template (vLLM's own tokenizer) and sent as token ids, so the text the model
sees is exactly what the hf backend would feed it. Written against vLLM's documented offline API
(``vllm.LLM``, ``LLM.generate(prompts, SamplingParams, lora_request=...)``,
``vllm.lora.request.LoRARequest``); not run in this project's CI, which has no GPU.

**Exact log-probs for any candidate tokens** (``logprobs=``):
- ``"token_ids"``: ``SamplingParams(logprob_token_ids=[...])``, vLLM's request for the
  log-probs of chosen tokens (up to 128 ids), each the log-softmax over the whole vocabulary
  of the raw logits: what the hf backend computes. Versions without it lack the field.
- ``"full"``: ``SamplingParams(logprobs=-1)`` with the engine's ``max_logprobs=-1``: every
  token's log-prob, of which the candidates are read. Exact too, but vLLM builds a
  vocabulary-sized dict per prompt on the host: slow for large runs; the fallback.
- ``"auto"`` (default): ``token_ids`` where the installed vLLM has it, else ``full``.
- ``"topk"``: the top ``top_logprobs`` alternatives only (the old, approximate behaviour: a
  candidate outside them is ``-inf``, counted in ``stats["logprob_candidates_missing"]``).
Exact modes share cached scores; ``topk`` has its own fingerprint.

**LoRA adapter folders** (peft's ``adapter_config.json``; what ``rankstack train`` writes):
``lora="merge"`` (default) merges the adapter into its base once (peft, on the CPU, bf16) into
``$RANKSTACK_CACHE/models/`` and serves the merged folder at full speed, as the hf backend
does; ``lora="runtime"`` serves the base with ``enable_lora=True`` and sends every request with
a ``LoRARequest`` (no merged copy on disk; ``max_lora_rank`` is the adapter's rank rounded up).

**Whole rounds**: ``chunk_size = 0`` tells the engine to hand over every request of a round in
one call (block of queries x requests per query), so continuous batching sees them all.

**Completions**: ``tokens``/``token_logprobs`` cover the returned text only: the tokens of a stop
string and the end-of-sequence token are trimmed (vLLM keeps them in ``token_ids``), as in hf.

**Fingerprint**: model (with a digest of a local folder or adapter), dtype, quantization,
KV-cache dtype, log-prob mode.

Engine options: ``dtype``, ``max_model_len``, ``gpu_memory_utilization``,
``tensor_parallel_size``, ``enable_prefix_caching``, ``seed`` and any other ``vllm.LLM`` keyword
(``quantization``, ``kv_cache_dtype``, ``enforce_eager``, ``load_format``, ...); from the CLI:
``--gpu-memory-utilization``, ``--max-model-len``, ``--tensor-parallel-size``,
``--backend-option KEY=VALUE``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rankstack.models import folder_digest
from rankstack.rerankers.backends.base import (Backend, BackendError, Completion, Prompt, SamplingParams,
                                               tokens_for_text)
from rankstack.rerankers.backends.text import TokenizerText

log = logging.getLogger(__name__)

LOGPROB_MODES = ("auto", "token_ids", "full", "topk")
#: vLLM's cap on ``logprob_token_ids`` per request
MAX_LOGPROB_TOKEN_IDS = 128
#: options of ``vllm.LLM`` that change the numbers it computes (part of the fingerprint)
NUMERIC_OPTIONS = ("quantization", "kv_cache_dtype", "revision", "tokenizer", "load_format", "hf_overrides")


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise BackendError("the vllm backend needs vLLM and a CUDA GPU: pip install 'rankstack[vllm]' "
                           f"(import failed: {e}); on CPU use backend='hf', or backend='openai' against a server") from e
    return vllm


def has_logprob_token_ids(vllm) -> bool:
    """Whether this vLLM takes ``SamplingParams(logprob_token_ids=...)``."""
    try:
        vllm.SamplingParams(max_tokens=1, logprob_token_ids=[0])
    except TypeError:
        return False
    return True


def lora_rank_bound(r: int) -> int:
    """``max_lora_rank`` for an adapter of rank ``r``: the next value vLLM accepts."""
    for v in (8, 16, 32, 64, 128, 256, 320, 512):
        if r <= v:
            return v
    raise BackendError(f"LoRA rank {r} is above what vLLM serves (512); use lora='merge'")


def _model_path(model: str) -> str:
    """A path or hub id vLLM can load: GGUF files and aliases go through rankstack's dequantized copy."""
    from rankstack.models import gguf_cache_dir, load_tokenizer, resolve

    src = resolve(model)
    if src.gguf_file:
        load_tokenizer(model)  # builds the dequantized safetensors copy once
        return str(gguf_cache_dir(src))
    return src.path


def merged_adapter_path(adapter: str) -> str:
    """The adapter merged into its base, saved once under ``$RANKSTACK_CACHE/models`` (keyed by
    the adapter folder's digest, so a retrained adapter gets a new copy)."""
    import torch

    from rankstack.models import load_causal_lm
    from rankstack.paths import cache_root

    dest = cache_root() / "models" / f"{Path(adapter).resolve().name}-merged-{folder_digest(adapter)}"
    if not (dest / "config.json").exists():
        log.info("merging LoRA adapter %s into its base once: %s", adapter, dest)
        model, tok = load_causal_lm(adapter, dtype=torch.bfloat16, device="cpu")  # peft merge_and_unload
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(dest)
        except OSError:  # another process finished first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return str(dest)


class VLLMBackend(TokenizerText, Backend):
    """vLLM's offline engine in this process (a GPU); its tokenizer is a transformers tokenizer, so
    prompts are rendered and counted as the hf backend does (:class:`TokenizerText`)."""

    name = "vllm"
    chunk_size = 0  # whole rounds: continuous batching wants every prompt at once

    def __init__(self, model: str = "smollm2-135m", dtype: str = "auto", logprobs: str = "auto",
                 top_logprobs: int = 20, enable_prefix_caching: bool = True, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, seed: int = 0,
                 lora: str = "merge", progress: bool = True, **engine_kwargs):
        from rankstack.models import is_lora_adapter

        vllm = _import_vllm()
        self._vllm = vllm
        if logprobs not in LOGPROB_MODES:
            raise BackendError(f"vllm: logprobs must be one of {LOGPROB_MODES}, got {logprobs!r}")
        if lora not in ("merge", "runtime"):
            raise BackendError(f"vllm: lora must be 'merge' or 'runtime', got {lora!r}")
        if logprobs == "auto":
            logprobs = "token_ids" if has_logprob_token_ids(vllm) else "full"
        elif logprobs == "token_ids" and not has_logprob_token_ids(vllm):
            raise BackendError(f"vLLM {getattr(vllm, '__version__', '?')} has no SamplingParams.logprob_token_ids; "
                               "use logprobs='full' (exact, slower) or 'auto'")
        self.logprob_mode = logprobs
        self.model_id = str(model)
        self.dtype = dtype
        self.top_logprobs = int(top_logprobs)
        self.progress = progress
        self.stats: Counter = Counter()
        self.lora_request = None
        digest = None
        if is_lora_adapter(model):
            digest = folder_digest(str(model))
            if lora == "merge":
                path = merged_adapter_path(str(model))
            else:
                cfg = json.loads((Path(model) / "adapter_config.json").read_text())
                path = _model_path(cfg["base_model_name_or_path"])
                engine_kwargs.setdefault("enable_lora", True)
                engine_kwargs.setdefault("max_lora_rank", lora_rank_bound(int(cfg.get("r", 16))))
                from vllm.lora.request import LoRARequest

                self.lora_request = LoRARequest(Path(model).name, 1, str(Path(model).resolve()))
        else:
            path = _model_path(str(model))
            if os.path.isdir(path):
                digest = folder_digest(path)
        self._numeric = {k: engine_kwargs[k] for k in NUMERIC_OPTIONS if k in engine_kwargs}
        self._digest = digest
        max_logprobs = {"full": -1, "token_ids": MAX_LOGPROB_TOKEN_IDS}.get(logprobs, max(self.top_logprobs, 20))
        kwargs = dict(model=path, dtype=dtype, enable_prefix_caching=enable_prefix_caching,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                      seed=seed, max_logprobs=max_logprobs, **engine_kwargs)
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def fingerprint(self) -> str:
        mode = "exact" if self.logprob_mode in ("token_ids", "full") else f"top{self.top_logprobs}"
        extra = json.dumps(self._numeric, sort_keys=True, default=str) if self._numeric else ""
        return f"vllm:{self.model_id}" + (f"@{self._digest}" if self._digest else "") + f":{self.dtype}:{mode}{extra}"

    @property
    def context_length(self) -> int:
        try:
            return int(self.llm.llm_engine.model_config.max_model_len)
        except AttributeError:
            return 8192

    def _run(self, prompts: Sequence[Prompt], sp) -> list:
        inputs = [{"prompt_token_ids": self.encode(p)} for p in prompts]
        lens = [len(x["prompt_token_ids"]) for x in inputs]  # prompt tokens (the prefix cache may skip some)
        self.stats["forward_passes"] += 1
        self.stats["forward_tokens"] += sum(lens)
        self.stats["attention_pairs"] += sum(n * (n + 1) // 2 for n in lens)
        kwargs = {"lora_request": self.lora_request} if self.lora_request is not None else {}
        return self.llm.generate(inputs, sp, use_tqdm=self.progress and len(inputs) >= 16, **kwargs)

    # --- model calls ---------------------------------------------------------------------
    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        cand_ids = [self.token_id(c) for c in candidates]
        out = np.full((len(prompts), len(cand_ids)), -np.inf, dtype=np.float32)
        if not len(prompts):
            return out
        mode = self.logprob_mode
        if mode == "token_ids" and len(set(cand_ids)) > MAX_LOGPROB_TOKEN_IDS:
            raise BackendError(f"vllm: {len(set(cand_ids))} candidate tokens; logprob_token_ids takes at most "
                               f"{MAX_LOGPROB_TOKEN_IDS} (use logprobs='full')")
        common = dict(n=1, temperature=0.0, max_tokens=1, detokenize=False)
        if mode == "token_ids":
            sp = self._vllm.SamplingParams(logprob_token_ids=sorted(set(cand_ids)), **common)
        elif mode == "full":
            sp = self._vllm.SamplingParams(logprobs=-1, **common)
        else:
            sp = self._vllm.SamplingParams(logprobs=self.top_logprobs, **common)
        for i, res in enumerate(self._run(prompts, sp)):
            step = (res.outputs[0].logprobs or [None])[0]
            if step is None:
                raise BackendError("vLLM returned no log-probs for a scoring request")
            for j, tid in enumerate(cand_ids):
                if tid in step:
                    out[i, j] = float(step[tid].logprob)
        missing = int(np.isneginf(out).sum())
        if missing:
            self.stats["logprob_candidates_missing"] += missing
            log.warning("%d of %d candidate log-probs missing from vLLM's answer (mode %s) count as -inf",
                        missing, out.size, mode)
        return out

    def continuation_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Teacher-forced log-probs of each continuation from vLLM's ``prompt_logprobs`` (the prompt's
        own tokens, scored in the prefill; prefix caching shares the rendered template head)."""
        if len(prompts) != len(continuations):
            raise BackendError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        heads = [self.encode(p) for p in prompts]
        tails = [self.tokenizer(c, add_special_tokens=False)["input_ids"] if c else [] for c in continuations]
        out = [np.zeros(0, dtype=np.float32) for _ in prompts]
        live = [i for i, t in enumerate(tails) if t]
        if not live:
            return out
        sp = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, prompt_logprobs=0)
        inputs = [{"prompt_token_ids": heads[i] + tails[i]} for i in live]
        for i, res in zip(live, self.llm.generate(inputs, sp, use_tqdm=self.progress and len(inputs) >= 16)):
            steps = (res.prompt_logprobs or [])[len(heads[i]):]
            if len(steps) != len(tails[i]) or any(s is None or t not in s for s, t in zip(steps, tails[i])):
                raise BackendError("vLLM returned no prompt log-probs (SamplingParams(prompt_logprobs=0) was ignored)")
            out[i] = np.asarray([float(s[t].logprob) for s, t in zip(steps, tails[i])], dtype=np.float32)
        return out

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams()) -> list[list[Completion]]:
        if not len(prompts):
            return []
        greedy = params.temperature <= 0
        sp = self._vllm.SamplingParams(
            n=params.n, temperature=0.0 if greedy else params.temperature, top_p=1.0 if greedy else params.top_p,
            top_k=params.top_k if (params.top_k > 0 and not greedy) else -1, max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None, seed=params.seed, logprobs=0)
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        results = []
        for res in self._run(prompts, sp):
            comps = []
            for o in res.outputs:
                ids = list(o.token_ids)
                steps = list(o.logprobs or [])
                lps = [float(step[t].logprob) if t in step else float("nan") for t, step in zip(ids, steps)]
                k = tokens_for_text(decode, ids, o.text)  # stop string / EOS tokens are not the completion's
                ids, lps = ids[:k], lps[:k]
                pieces = self.tokenizer.convert_ids_to_tokens(ids)
                comps.append(Completion(o.text, lps, pieces, "length" if o.finish_reason == "length" else "stop"))
            results.append(comps)
        return results
