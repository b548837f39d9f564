"""Generative listwise reranking: prompts, budgets, fitting, batching, passes/shuffle, real SmolLM2."""

from __future__ import annotations

from collections import Counter

import pytest

from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.base import GenerateRequest
from rankstack.rerankers.listwise import ListwiseReranker
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


def test_windows_of_all_queries_are_batched_and_repairs_counted(tiny, dl19):
    qids = sorted(dl19.run)[:3]
    run = Run({q: dl19.run[q] for q in qids})
    rr = ListwiseReranker(tiny, window=4, step=2, top_k=6, max_passage_tokens=8, cache=False, progress=False)
    out = rr.rerank_run(run, dl19.queries, dl19.corpus, depth=6)
    # 6 candidates -> windows (2, 6), (0, 4): two model calls, each with one window per query
    assert tiny.calls == [("generate", 3), ("generate", 3)]
    md = out.metadata
    assert md["windows"] == 6 and md["outputs_parsed"] == 6
    assert md["outputs_repaired"] >= 1  # a random model
    assert sum(v for k, v in md.items() if k.startswith("parse_")) >= md["outputs_repaired"]
    for q in qids:
        assert sorted(out[q].docids) == sorted(dl19.run[q].docids)
        assert out[q].docids[6:] == dl19.run[q].docids[6:]


def test_reasonrank_fallbacks_are_counted(tiny):
    rr = ListwiseReranker(tiny, prompt="reasonrank", reasoning_tokens=4, window=4, step=2, cache=False,
                          progress=False)
    docs = [Doc(str(i), f"passage number {i}") for i in range(6)]
    ranking = rr.rerank(Query("q1", "which passage"), docs)
    assert sorted(ranking.docids) == [str(i) for i in range(6)]
    st = rr.last_stats
    assert st["windows"] == 2 and st["outputs_parsed"] == 2
    assert st["parse_no_answer_tag"] + st["parse_unclosed_answer"] + st["parse_no_think_close"] >= 2


def test_passes_and_shuffle(tiny):
    docs = [Doc(str(i), f"text {i}") for i in range(5)]
    q = Query("q7", "a query")
    seq = ListwiseReranker(tiny, window=3, step=2, passes=2, max_passage_tokens=4, cache=False, progress=False)
    seq.rerank(q, docs)
    assert seq.last_stats["windows"] == 2 * 2 and [c[1] for c in tiny.calls] == [1] * 4  # sequential passes
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
    b = rr.rerank(Query("q", "x"), docs)
    assert a.docids == b.docids and len(tiny.calls) == n and rr.last_stats["cache_hits"] == 1


def test_real_smollm2_generates_a_ranking(smollm2, dl19):
    """SmolLM2-135M on one real 4-passage window: its output is parsed (repairs counted)."""
    qid = sorted(dl19.run)[0]
    docs = dl19.corpus.get_many(dl19.run[qid].top(4).docids)
    rr = ListwiseReranker(smollm2, window=4, step=4, max_passage_tokens=12, cache=False, progress=False)
    stats = Counter()
    reqs = rr.window_requests(dl19.queries[qid], [rr.prepare_doc(d) for d in docs], stats)
    assert isinstance(reqs[0], GenerateRequest)
    (comps,) = rr.execute(reqs)
    assert comps[0].text.strip() and comps[0].num_tokens <= reqs[0].params.max_new_tokens
    order = rr.window_order([comps], 4, stats)
    assert sorted(order) == list(range(4)) and stats["outputs_parsed"] == 1
