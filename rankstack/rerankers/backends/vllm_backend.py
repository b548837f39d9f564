"""vLLM's offline engine (GPU): continuous batching and automatic prefix caching.

Install with ``pip install 'rankstack[vllm]'`` on a machine with a CUDA GPU. Prompts are rendered
with the model's chat template (vLLM's own tokenizer) and sent as token ids, so the text the model
sees is exactly what the hf backend would feed it.

Written against vLLM's documented offline API — ``LLM(model, enable_prefix_caching=True)``,
``LLM.get_tokenizer()``, ``LLM.generate(prompts, SamplingParams(...))`` with
``SamplingParams(n, temperature, top_p, top_k, max_tokens, stop, seed, logprobs)`` — and returning
``RequestOutput.outputs[i]`` with ``text``, ``token_ids``, ``logprobs`` (per generated token a
dict ``token_id -> Logprob(logprob, rank, decoded_token)``) and ``finish_reason``.

Next-token log-probs come from one generated token with ``logprobs=K`` (the top ``K`` of the
whole vocabulary, from the raw model logits): a candidate outside the top ``K`` gets ``-inf``,
counted in ``stats["logprob_candidates_missing"]`` and logged (raise ``top_logprobs`` if it happens).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rankstack.rerankers.backends.base import Backend, BackendError, Completion, Prompt, SamplingParams
from rankstack.rerankers.backends.hf import HFBackend

log = logging.getLogger(__name__)


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise BackendError("the vllm backend needs vLLM and a CUDA GPU: pip install 'rankstack[vllm]' "
                           f"(import failed: {e}); on CPU use backend='hf', or backend='openai' against a server") from e
    return vllm


def _model_path(model: str) -> str:
    """A path or hub id vLLM can load: GGUF files and aliases go through rankstack's dequantized copy."""
    from rankstack.models import gguf_cache_dir, load_tokenizer, resolve

    src = resolve(model)
    if src.gguf_file:
        load_tokenizer(model)  # builds the dequantized safetensors copy once
        return str(gguf_cache_dir(src))
    return src.path


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str = "smollm2-135m", dtype: str = "auto", top_logprobs: int = 20,
                 enable_prefix_caching: bool = True, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, seed: int = 0,
                 progress: bool = True, **engine_kwargs):
        vllm = _import_vllm()
        self._vllm = vllm
        self.model_id = str(model)
        self.dtype = dtype
        self.top_logprobs = int(top_logprobs)
        self.progress = progress
        self.stats: Counter = Counter()
        kwargs = dict(model=_model_path(model), dtype=dtype, enable_prefix_caching=enable_prefix_caching,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                      seed=seed, max_logprobs=max(self.top_logprobs, 20), **engine_kwargs)
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._cand_cache: dict[str, int] = {}

    def fingerprint(self) -> str:
        return f"vllm:{self.model_id}:{self.dtype}"

    @property
    def context_length(self) -> int:
        try:
            return int(self.llm.llm_engine.model_config.max_model_len)
        except AttributeError:
            return 8192

    # --- text: vLLM's tokenizer is a transformers tokenizer, handled as the hf backend does ---------
    render = HFBackend.render
    encode = HFBackend.encode
    count_tokens = HFBackend.count_tokens
    truncate = HFBackend.truncate
    token_id = HFBackend.token_id

    def _run(self, prompts: Sequence[Prompt], sp) -> list:
        inputs = [{"prompt_token_ids": self.encode(p)} for p in prompts]
        return self.llm.generate(inputs, sp, use_tqdm=self.progress and len(inputs) >= 16)

    # --- model calls ---------------------------------------------------------------------
    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        cand_ids = [self.token_id(c) for c in candidates]
        out = np.full((len(prompts), len(cand_ids)), -np.inf, dtype=np.float32)
        if not len(prompts):
            return out
        sp = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=self.top_logprobs)
        for i, res in enumerate(self._run(prompts, sp)):
            step = (res.outputs[0].logprobs or [None])[0]
            if step is None:
                raise BackendError("vLLM returned no log-probs (SamplingParams(logprobs=K) was ignored)")
            for j, tid in enumerate(cand_ids):
                if tid in step:
                    out[i, j] = float(step[tid].logprob)
        missing = int(np.isneginf(out).sum())
        if missing:
            self.stats["logprob_candidates_missing"] += missing
            log.warning("%d of %d candidate log-probs were outside vLLM's top %d and count as -inf",
                        missing, out.size, self.top_logprobs)
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
        results = []
        for res in self._run(prompts, sp):
            comps = []
            for o in res.outputs:
                ids = list(o.token_ids)
                steps = o.logprobs or []
                lps = [float(step[t].logprob) for t, step in zip(ids, steps) if t in step]
                pieces = self.tokenizer.convert_ids_to_tokens(ids)
                comps.append(Completion(o.text, lps, pieces, "length" if o.finish_reason == "length" else "stop"))
            results.append(comps)
        return results
