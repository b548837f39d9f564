"""hf backend sampling: n samples, seeds, stop strings, token counts and log-probs."""

from __future__ import annotations

import pytest

from rankstack.rerankers.backends.base import Prompt, SamplingParams
from rankstack.rerankers.backends.hf import HFBackend


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    model, tok = tiny_lm
    return HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, dtype="float32", batch_size=8)


PROMPTS = [Prompt.chat("What is a fox?"), Prompt.chat("Name three rivers in Europe, please.")]


def test_n_samples_with_token_logprobs(tiny):
    out = tiny.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=6, seed=1))
    assert [len(cs) for cs in out] == [3, 3]
    for cs in out:
        for c in cs:
            assert 1 <= c.num_tokens <= 6
            assert len(c.tokens) == len(c.token_logprobs) == c.num_tokens
            assert all(lp <= 0.0 for lp in c.token_logprobs)
            assert c.finish_reason in ("stop", "length")
    # a random model samples 3 different continuations
    assert len({c.text for c in out[1]}) > 1


def test_seeded_sampling_is_reproducible(tiny):
    p = SamplingParams(n=2, temperature=1.0, top_p=0.9, top_k=50, max_new_tokens=8, seed=123)
    a = tiny.generate(PROMPTS, p)
    b = tiny.generate(PROMPTS, p)
    assert [[c.text for c in cs] for cs in a] == [[c.text for c in cs] for cs in b]
    assert [[c.token_logprobs for c in cs] for cs in a] == [[c.token_logprobs for c in cs] for cs in b]
    other = tiny.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, top_p=0.9, top_k=50, max_new_tokens=8, seed=124))
    assert [[c.text for c in cs] for cs in a] != [[c.text for c in cs] for cs in other]


def test_greedy_stop_string_cuts_the_text(tiny):
    full = tiny.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12))[0][0]
    assert full.finish_reason == "length" and full.num_tokens == 12
    stop = full.tokens[5]
    stop_text = tiny.tokenizer.convert_tokens_to_string([stop])
    cut = full.text.find(stop_text)
    assert cut >= 0
    short = tiny.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12, stop=(stop_text,)))[0][0]
    assert short.text == full.text[:cut]
    assert short.finish_reason == "stop"
    assert short.num_tokens <= 6  # generation stopped, not only the text


def test_real_model_stop_string(smollm2):
    p = Prompt.chat("Count from 1 to 10, separated by commas.")
    out = smollm2.generate([p], SamplingParams(max_new_tokens=30, stop=("5",)))[0][0]
    assert "5" not in out.text and "4" in out.text
    assert out.finish_reason == "stop"
