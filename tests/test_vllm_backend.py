"""The vllm backend on SmolLM2 (needs vLLM and a CUDA GPU; skipped elsewhere, never run in CI).

Covers both request types every paradigm sends (``LogprobRequest``: pointwise yes/no, 0-10,
ProRank, FIRST; ``GenerateRequest``: ERank, listwise, groupwise, rubric, setwise), exact
log-probs for candidates far outside the top 20, stop-token trimming, whole rounds handed to
the engine, the fingerprint, and LoRA adapter folders (merged, and served with enable_lora).
The missing-dependency error and the pure helpers are tested everywhere."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rankstack.rerankers.backends import BackendError, Prompt, SamplingParams, load_backend
from rankstack.rerankers.backends.vllm_backend import lora_rank_bound

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed: the missing-dependency error cannot be seen")
def test_missing_vllm_gives_clear_error():
    with pytest.raises(BackendError, match=r"pip install 'rankstack\[vllm\]'"):
        load_backend("vllm", model="smollm2-135m")


def test_lora_rank_bound():
    assert [lora_rank_bound(r) for r in (4, 8, 9, 64, 300)] == [8, 8, 16, 64, 320]
    with pytest.raises(BackendError, match="merge"):
        lora_rank_bound(1024)


PROMPTS = [Prompt.chat(f"Is this passage relevant to the query?\nQuery: {q}\nPassage: {p}\nAnswer yes or no.")
           for q, p in [("capital of france", "Paris is the capital of France."),
                        ("capital of france", "Bananas are yellow fruits."),
                        ("how do bees make honey", "Bees turn nectar into honey in the hive.")]]


@pytest.fixture(scope="module")
def vllm_backend():
    return load_backend("vllm", model="smollm2-135m", dtype="float32", gpu_memory_utilization=0.3,
                        max_model_len=2048, progress=False)


@pytest.fixture(scope="module")
def hf_gpu():
    return load_backend("hf", model="smollm2-135m", dtype="float32", device="cuda")


@pytest.fixture(scope="module")
def run4(dl19):
    from rankstack.types import Run

    return Run({q: dl19.run[q].top(6) for q in sorted(dl19.run)[:2]})


@pytest.mark.gpu
@pytest.mark.skipif(not (HAVE_VLLM and _cuda()), reason="needs vLLM and a CUDA GPU")
class TestOnGPU:
    def test_logprobs_are_exact_for_any_candidate_set(self, vllm_backend, hf_gpu):
        cands = ["yes", "no", "Paris", "zebra", "A", "T", "7"]  # most far outside the top 20
        got = vllm_backend.next_token_logprobs(PROMPTS, cands)
        ref = hf_gpu.next_token_logprobs(PROMPTS, cands)
        assert np.all(np.isfinite(got)) and vllm_backend.stats["logprob_candidates_missing"] == 0
        assert np.allclose(got, ref, atol=0.05)
        assert vllm_backend.logprob_mode in ("token_ids", "full") and ":exact" in vllm_backend.fingerprint()

    def test_generate_greedy_sampled_and_stop_trimmed(self, vllm_backend, hf_gpu):
        a = vllm_backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12))
        b = vllm_backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12))
        assert a[0][0].text == b[0][0].text and a[0][0].num_tokens == len(a[0][0].tokens) > 0
        assert all(lp <= 0 for lp in a[0][0].token_logprobs)
        s = vllm_backend.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=1))
        assert [len(x) for x in s] == [3, 3, 3]
        p = [Prompt.chat("Count from 1 to 9 separated by commas.")]
        stop = vllm_backend.generate(p, SamplingParams(max_new_tokens=30, stop=("4",)))[0][0]
        assert "4" not in stop.text and stop.finish_reason == "stop"
        decoded = vllm_backend.tokenizer.convert_tokens_to_string(stop.tokens)
        assert "4" not in decoded and len(stop.token_logprobs) == len(stop.tokens)  # stop tokens trimmed
        eos = vllm_backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=200))[0][0]
        if eos.finish_reason == "stop":  # ended on end-of-sequence: that token is not in the completion
            assert vllm_backend.tokenizer.eos_token not in eos.tokens
        ref = hf_gpu.generate(p, SamplingParams(max_new_tokens=30, stop=("4",)))[0][0]
        assert ref.text == stop.text and ref.num_tokens == stop.num_tokens

    @pytest.mark.parametrize("name,opts", [
        ("pointwise", {"method": "yesno"}), ("pointwise", {"method": "score10"}),
        ("pointwise", {"method": "prorank"}), ("first", {"window": 4, "step": 2}),
    ])
    def test_logprob_paradigms_rank_as_hf(self, vllm_backend, hf_gpu, run4, dl19, name, opts):
        from rankstack.rerankers import load_reranker

        calls = []
        orig = vllm_backend.llm.generate
        vllm_backend.llm.generate = lambda inputs, *a, **k: calls.append(len(inputs)) or orig(inputs, *a, **k)
        try:
            got = load_reranker(name, backend=vllm_backend, cache=False, progress=False, **opts).rerank_run(
                run4, dl19.queries, dl19.corpus, depth=6)
        finally:
            vllm_backend.llm.generate = orig
        ref = load_reranker(name, backend=hf_gpu, cache=False, progress=False, **opts).rerank_run(
            run4, dl19.queries, dl19.corpus, depth=6)
        for q in run4:
            a, b = got[q].scores(), ref[q].scores()
            assert max(abs(a[d] - b[d]) for d in a) < 0.05
        if name == "pointwise" and opts["method"] != "score10":
            assert calls == [12]  # the whole round (2 queries x 6 passages) in one engine call

    @pytest.mark.parametrize("name,opts", [
        ("pointwise", {"method": "erank", "max_new_tokens": 64}),
        ("listwise", {"window": 4, "step": 2}),
        ("groupwise", {"group_size": 3, "repeats": 1}),
        ("rubric", {"samples": 2}),
        ("setwise", {"k": 2, "num_child": 2, "reasoning": False}),
    ])
    def test_generation_paradigms_run_and_parse(self, vllm_backend, run4, dl19, name, opts):
        from rankstack.rerankers import load_reranker

        out = load_reranker(name, backend=vllm_backend, cache=False, progress=False, **opts).rerank_run(
            run4, dl19.queries, dl19.corpus, depth=6)
        for q in run4:
            assert sorted(out[q].docids) == sorted(run4[q].docids)
        assert out.metadata["generated_tokens"] > 0

    def test_lora_folder_merged_and_runtime(self, tmp_path, hf_gpu):
        import torch
        from peft import LoraConfig, get_peft_model

        from rankstack.models import load_causal_lm

        base, tok = load_causal_lm("smollm2-135m", dtype=torch.float32)
        torch.manual_seed(0)
        peft = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        peft.peft_config["default"].base_model_name_or_path = "smollm2-135m"
        adapter = tmp_path / "adapter"
        peft.save_pretrained(adapter)
        tok.save_pretrained(adapter)
        ref = load_backend("hf", model=str(adapter), dtype="float32", device="cuda").next_token_logprobs(
            PROMPTS, ["yes", "no"])
        for mode in ("merge", "runtime"):
            be = load_backend("vllm", model=str(adapter), dtype="float32", lora=mode, gpu_memory_utilization=0.2,
                              max_model_len=1024, progress=False)
            got = be.next_token_logprobs(PROMPTS, ["yes", "no"])
            assert np.allclose(got, ref, atol=0.05), mode
            assert "@" in be.fingerprint()  # the adapter folder's digest
            del be
