"""Generative listwise reranking: prompts, budgets, fitting, batching, passes/shuffle, real SmolLM2."""

from __future__ import annotations

from collections import Counter

import pytest

from rankstack.rerankers.backends.base import Completion
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.base import GenerateRequest
from rankstack.rerankers.engine import drive_program, rerank_queries
from rankstack.rerankers.listwise import ListwiseReranker
from rankstack.rerankers.parsing import parse_permutation
from rankstack.rerankers.prompts.listwise import REASONRANK_SYSTEM, clean_passage, full_permutation, render_listwise
from rankstack.types import Doc, Query, Run


class CountingHF(HFBackend):
    """The real hf backend, recording how many prompts each model call received."""

    calls: list

    def generate(self, prompts, params=None):
        self.calls.append(("generate", len(prompts)))
        return super().generate(prompts, params)

    def next_token_logprobs(self, prompts, candidates):
        self.calls.append(("logprobs", len(prompts)))
        return super().next_token_logprobs(prompts, candidates)


@pytest.fixture
def tiny(tiny_lm):
    model, tok = tiny_lm
    be = CountingHF(model_obj=model, tokenizer=tok, batch_size=8)
    be.calls = []
    return be


def test_rankzephyr_prompt_text_and_passage_rewrite():
    p = render_listwise("rankzephyr", "what is x", [clean_passage("see [2] and [10]"), "b"])
    (role_s, system), (role_u, user) = p.messages
    assert role_s == "system" and system.startswith("You are RankLLM")
    assert user.startswith("I will provide you with 2 passages, each indicated by a numerical identifier []. "
                           "Rank the passages based on their relevance to the search query: what is x.\n\n"
                           "[1] see (2) and (10)\n[2] b\nSearch Query: what is x.\nRank the 2 passages above")
    assert user.endswith("e.g., [2] > [1], Only respond with the ranking results, do not say any word or explain.")
    alpha = render_listwise("rankzephyr", "q", ["a", "b"], ids="alpha").messages[1][1]
    assert "a alphabetical identifier" in alpha and "[A] a\n[B] b\n" in alpha and "[B] > [A]" in alpha
    rr = render_listwise("reasonrank", "q", ["a", "b"]).messages
    assert rr[0][1] == REASONRANK_SYSTEM and rr[1][1].endswith("The format of the answer should be [] > [], e.g., [2] > [1].")


def test_rankgpt_is_one_turn_per_passage():
    p = render_listwise("rankgpt", "q", ["alpha", "beta", "gamma"])
    roles = [r for r, _ in p.messages]
    assert roles == ["system"] + ["user", "assistant"] * 4 + ["user"]
    assert p.messages[3] == ("user", "[1] alpha") and p.messages[4] == ("assistant", "Received passage [1].")
    assert p.messages[-1][1].startswith("Search Query: q.")


def test_output_budget_is_the_full_permutation(tiny):
    rr = ListwiseReranker(tiny, cache=False)
    assert rr.sampling_params(20).max_new_tokens == tiny.count_tokens(full_permutation(20))
    assert rr.sampling_params(20).temperature == 0.0
    rs = ListwiseReranker(tiny, prompt="reasonrank", reasoning_tokens=50, cache=False)
    assert rs.sampling_params(20).max_new_tokens > 50 + tiny.count_tokens(full_permutation(20))
    assert rs.sampling_params(20).stop == ("</answer>",)


def test_passages_shrink_until_the_prompt_fits(tiny_lm, dl19):
    model, tok = tiny_lm
    be = HFBackend(model_obj=model, tokenizer=tok, max_length=900)
    rr = ListwiseReranker(be, cache=False, max_passage_tokens=100)
    qid = sorted(dl19.run)[0]
    docs = [rr.prepare_doc(d) for d in dl19.corpus.get_many(dl19.run[qid].top(20).docids)]
    stats = Counter()
    (req,) = rr.window_requests(dl19.queries[qid], docs, stats)
    assert stats["prompt_shrunk"] == 1
    assert len(be.encode(req.prompt)) <= 900 - req.params.max_new_tokens
    assert req.prompt.messages[1][1].count("\n[") == 20 and "\n[20] " in req.prompt.messages[1][1]


def test_windows_of_all_queries_are_batched(tiny, dl19):
    qids = sorted(dl19.run)[:3]
    run = Run({q: dl19.run[q] for q in qids})
    rr = ListwiseReranker(tiny, window=4, step=2, top_k=6, max_passage_tokens=8, cache=False, progress=False)
    out = rr.rerank_run(run, dl19.queries, dl19.corpus, depth=6)
    # 6 candidates -> windows (2, 6), (0, 4): two model calls, each with one window per query
    assert tiny.calls == [("generate", 3), ("generate", 3)]
    assert out.metadata["windows"] == 6 and out.metadata["outputs_parsed"] == 6
    for q in qids:
        assert sorted(out[q].docids) == sorted(dl19.run[q].docids)
        assert out[q].docids[6:] == dl19.run[q].docids[6:]


def _scripted(rr, docs, outputs):
    """Run a listwise program on given model outputs (one per window, in order); -> (ranking, stats)."""
    stats, texts = Counter(), iter(outputs)

    def respond(req):
        text, finish = next(texts)
        return [Completion(text, finish_reason=finish)]

    return drive_program(rr.program(Query("q", "x"), docs, stats), respond), stats


def test_repairs_of_broken_outputs():
    """The RankGPT cleanup applied to given broken outputs, window by window (bottom-up)."""
    docs = [Doc(f"d{i}", f"passage {i}") for i in range(6)]
    rr = ListwiseReranker(None, window=4, step=2, top_k=6, cache=False)
    ranking, st = _scripted(rr, docs, [
        ("[2] > [2] > [9] > [1]", "stop"),  # window d2..d5: duplicate, out of range, 3 and 4 missing
        ("I cannot rank these.", "stop"),   # window d0 d1 d3 d2: no ids -> unchanged
    ])
    assert ranking.docids == ["d0", "d1", "d3", "d2", "d4", "d5"]
    assert {k: v for k, v in st.items() if k != "windows"} == {
        "outputs_parsed": 2, "outputs_repaired": 2, "parse_duplicates": 1, "parse_out_of_range": 1,
        "parse_missing": 1, "parse_no_ids": 1, "ids_dropped": 2, "ids_appended": 2 + 4}  # no ids: all 4 kept in place
    ranking, st = _scripted(rr, docs, [("[4] > [3] > [2] > [1]", "stop"), ("[1] > [4]", "length")])
    assert ranking.docids == ["d0", "d4", "d1", "d5", "d3", "d2"]  # d0 d1 d5 d4 d3 d2, then [1] > [4] > 2, 3
    assert st["parse_missing"] == 1 and st["ids_appended"] == 2 and st["output_truncated"] == 1


def test_reasonrank_answer_fallbacks_on_broken_outputs():
    docs = [Doc(f"d{i}", f"passage {i}") for i in range(6)]
    rr = ListwiseReranker(None, prompt="reasonrank", window=4, step=2, top_k=6, cache=False)
    ranking, st = _scripted(rr, docs, [
        ("[4] > [1] > [2] > [3]", "stop"),                                   # no tags at all: the whole text
        ("<think>[1] is off</think> <answer>[2] > [1] > [4] > [3]", "length"),  # cut inside the answer
    ])
    # window d2..d5 -> d5 d2 d3 d4; window d0 d1 d5 d2 -> d1 d0 d2 d5
    assert ranking.docids == ["d1", "d0", "d2", "d5", "d3", "d4"]
    assert st["parse_no_answer_tag"] == 1 and st["parse_no_think_close"] == 1 and st["parse_unclosed_answer"] == 1
    assert st["output_truncated"] == 1 and st["outputs_repaired"] == 0  # the permutations themselves were whole
    _, st = _scripted(rr, docs, [("<think>a</think><answer>[1] > [2] > [3] > [4]", "stop")] * 2)
    assert st["parse_unclosed_answer"] == 0  # stopped at the stop string "</answer>": not a repair


def test_passes_and_shuffle(tiny):
    docs = [Doc(str(i), f"text {i}") for i in range(5)]
    q = Query("q7", "a query")
    seq = ListwiseReranker(tiny, window=3, step=2, passes=2, max_passage_tokens=4, cache=False, progress=False)
    _, stats = rerank_queries(seq, {q.qid: q}, {q.qid: docs})
    assert stats.counts["windows"] == 2 * 2 and [c[1] for c in tiny.calls] == [1] * 4  # sequential passes
    tiny.calls.clear()
    shuf = ListwiseReranker(tiny, window=3, step=2, passes=2, shuffle=True, seed=1, max_passage_tokens=4,
                            cache=False, progress=False)
    r1 = shuf.rerank(q, docs)
    assert [c[1] for c in tiny.calls] == [2, 2]  # the shuffled passes run side by side
    assert sorted(r1.docids) == sorted(d.docid for d in docs)
    scores = [d.score for d in r1.docs]
    assert all(0 < s <= 1 for s in scores) and scores == sorted(scores, reverse=True)  # mean reciprocal rank


def test_cache_makes_a_rerun_free(tiny, tmp_path):
    docs = [Doc(str(i), f"text {i}") for i in range(5)]
    rr = ListwiseReranker(tiny, window=5, step=5, cache=str(tmp_path / "c.sqlite"), max_passage_tokens=8, progress=False)
    a = rr.rerank(Query("q", "x"), docs)
    n = len(tiny.calls)
    b, stats = rerank_queries(rr, {"q": Query("q", "x")}, {"q": docs})
    assert a.docids == b["q"].docids and len(tiny.calls) == n and stats.cache_hits == 1


def test_real_smollm2_generates_a_ranking(smollm2, dl19):
    """SmolLM2-135M on one real 4-passage window: the completion stays within the output budget and
    the window's order is what the cleanup makes of that text, with its repairs counted. Whether the
    135M model writes identifiers at all is not asserted (its greedy text flips between CPU kernels);
    the repairs of broken outputs are scripted above."""
    qid = sorted(dl19.run)[0]
    docs = dl19.corpus.get_many(dl19.run[qid].top(4).docids)
    rr = ListwiseReranker(smollm2, window=4, step=4, max_passage_tokens=12, cache=False, progress=False)
    stats = Counter()
    reqs = rr.window_requests(dl19.queries[qid], [rr.prepare_doc(d) for d in docs], stats)
    assert isinstance(reqs[0], GenerateRequest)
    (comps,) = rr.execute(reqs)
    assert comps[0].num_tokens <= reqs[0].params.max_new_tokens
    parsed = parse_permutation(comps[0].text, 4)
    assert sorted(parsed.order) == [0, 1, 2, 3]  # always a whole permutation of the window
    assert rr.window_order([comps], 4, stats) == parsed.order and stats["outputs_parsed"] == 1
    assert stats["parse_no_ids"] == int(parsed.no_ids) and stats["ids_appended"] == parsed.missing, comps[0].text
