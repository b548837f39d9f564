"""The vllm backend on SmolLM2 (needs vLLM and a CUDA GPU; skipped elsewhere).

The missing-dependency error is tested everywhere vLLM is absent."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rankstack.rerankers.backends import BackendError, Prompt, SamplingParams, load_backend

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


needs_gpu = pytest.mark.skipif(not (HAVE_VLLM and _cuda()), reason="needs vLLM and a CUDA GPU")

PROMPTS = [Prompt.chat(f"Is this passage relevant to the query?\nQuery: {q}\nPassage: {p}\nAnswer yes or no.")
           for q, p in [("capital of france", "Paris is the capital of France."),
                        ("capital of france", "Bananas are yellow fruits."),
                        ("how do bees make honey", "Bees turn nectar into honey in the hive.")]]


@pytest.fixture(scope="module")
def vllm_backend():
    return load_backend("vllm", model="smollm2-135m", dtype="float32", gpu_memory_utilization=0.3,
                        max_model_len=2048)


@needs_gpu
@pytest.mark.gpu
def test_vllm_logprobs_agree_with_hf(vllm_backend, smollm2):
    got = vllm_backend.next_token_logprobs(PROMPTS, ["yes", "no"])
    ref = smollm2.next_token_logprobs(PROMPTS, ["yes", "no"])
    assert got.shape == (3, 2) and np.all(got <= 0)
    assert np.allclose(got, ref, atol=0.05)


@needs_gpu
@pytest.mark.gpu
def test_vllm_generate_greedy_sampling_and_stop(vllm_backend):
    a = vllm_backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12))
    b = vllm_backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12))
    assert a[0][0].text == b[0][0].text and a[0][0].num_tokens == len(a[0][0].tokens) > 0
    assert all(lp <= 0 for lp in a[0][0].token_logprobs)
    s = vllm_backend.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=1))
    assert [len(x) for x in s] == [3, 3, 3]
    stop = vllm_backend.generate([Prompt.chat("Count: 1, 2, 3, 4, 5, 6")], SamplingParams(max_new_tokens=30, stop=("4",)))
    assert "4" not in stop[0][0].text
