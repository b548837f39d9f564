"""The reranker engine: cache/resume, repeated runs, fusion, rerank() inputs, depth tail, truncation.

A tiny random Llama (SmolLM2's tokenizer) runs through the real ``hf`` backend; a thin wrapper
counts the prompts that reach the model and can interrupt a run part-way.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers import Fusion
from rankstack.rerankers.backends.base import Backend
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.cache import ScoreCache
from rankstack.rerankers.engine import EngineStats
from rankstack.rerankers.pointwise import PointwiseReranker
from rankstack.types import Doc, Query, Ranking, Run


class Counting(Backend):
    """Delegates to a real backend; counts every prompt scored; raises KeyboardInterrupt once
    ``interrupt_after`` prompts have been scored (simulating Ctrl-C mid-run)."""

    def __init__(self, inner: HFBackend, interrupt_after: int | None = None):
        self.inner, self.interrupt_after = inner, interrupt_after
        self.name, self.model_id = inner.name, inner.model_id
        self.seen: Counter = Counter()
        self.prompts: list = []

    def fingerprint(self):
        return self.inner.fingerprint()

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def truncate(self, text, max_tokens):
        return self.inner.truncate(text, max_tokens)

    def next_token_logprobs(self, prompts, candidates):
        if self.interrupt_after is not None and sum(self.seen.values()) >= self.interrupt_after:
            raise KeyboardInterrupt
        for p in prompts:
            self.seen[p.key()] += 1
        self.prompts += list(prompts)
        return self.inner.next_token_logprobs(prompts, candidates)

    def generate(self, prompts, params):
        return self.inner.generate(prompts, params)


@pytest.fixture(scope="module")
def tiny_backend(tiny_lm):
    model, tok = tiny_lm
    return HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)


@pytest.fixture(scope="module")
def small_run(dl19):
    qids = sorted(dl19.run)[:3]
    run = Run(name="bm25")
    for q in qids:
        run[q] = dl19.run[q].top(10)
    return run


def _scores(run: Run) -> dict:
    return {(q, d.docid): d.score for q, r in run.items() for d in r.docs}


def test_interrupted_run_resumes_without_rescoring(tiny_backend, small_run, dl19, tmp_path):
    ref = PointwiseReranker(tiny_backend, cache=False, progress=False, max_doc_tokens=40).rerank_run(
        small_run, dl19.queries, dl19.corpus, depth=8)
    cache = str(tmp_path / "c.sqlite")
    first = Counting(tiny_backend, interrupt_after=8)
    rr = PointwiseReranker(first, cache=cache, chunk_size=4, progress=False, max_doc_tokens=40)
    with pytest.raises(KeyboardInterrupt):
        rr.rerank_run(small_run, dl19.queries, dl19.corpus, depth=8)
    assert sum(first.seen.values()) == 8  # two chunks of 4 went through, then Ctrl-C
    assert ScoreCache(cache).count(rr.fingerprint()) == 8  # both chunks were committed

    second = Counting(tiny_backend)
    rr2 = PointwiseReranker(second, cache=cache, chunk_size=4, progress=False, max_doc_tokens=40)
    out = rr2.rerank_run(small_run, dl19.queries, dl19.corpus, depth=8)
    both = first.seen + second.seen
    # every distinct prompt (query, passage) scored exactly once; DL19 lists hold a few duplicate
    # passages (same text, two docids): one prompt answers both
    distinct = {rr.prompt(dl19.queries[q], rr.prepare_doc(d)).key() for q in small_run
                for d in dl19.corpus.get_many(small_run[q].docids[:8])}
    assert set(both) == distinct and max(both.values()) == 1
    assert out.metadata["cache_hits"] == 8 and out.metadata["model_requests"] == len(distinct) - 8
    a, b = _scores(out), _scores(ref)
    assert a.keys() == b.keys()
    assert max(abs(a[k] - b[k]) for k in a) < 1e-4
    for q in small_run:  # same order (ties aside)
        assert out[q].docids[8:] == ref[q].docids[8:] == small_run[q].docids[8:]

    third = Counting(tiny_backend)
    again = PointwiseReranker(third, cache=cache, progress=False, max_doc_tokens=40).rerank_run(
        small_run, dl19.queries, dl19.corpus, depth=8)
    assert sum(third.seen.values()) == 0 and again.metadata["model_requests"] == 0
    assert again.metadata["cache_hits"] == again.metadata["requests"] == 24 and _scores(again) == a


def test_fingerprint_separates_prompts_and_options(tiny_backend, tmp_path):
    base = PointwiseReranker(tiny_backend, cache=False)
    assert base.fingerprint() == PointwiseReranker(tiny_backend, cache=False).fingerprint()
    others = [PointwiseReranker(tiny_backend, cache=False, instruction="Relevant? yes/no"),
              PointwiseReranker(tiny_backend, cache=False, method="prorank"),
              PointwiseReranker(tiny_backend, cache=False, max_doc_tokens=64),
              PointwiseReranker(tiny_backend, cache=False, system="")]
    assert len({base.fingerprint(), *[o.fingerprint() for o in others]}) == 5


def test_no_cache_makes_model_calls_every_time(tiny_backend, small_run, dl19):
    c = Counting(tiny_backend)
    rr = PointwiseReranker(c, cache=False, progress=False, max_doc_tokens=32)
    rr.rerank_run(small_run, dl19.queries, dl19.corpus, depth=3)
    rr.rerank_run(small_run, dl19.queries, dl19.corpus, depth=3)
    assert len(c.seen) >= 6 and set(c.seen.values()) == {2}  # every distinct prompt, both times


def test_fusion_with_first_stage(tiny_backend, small_run, dl19, tmp_path):
    cache = str(tmp_path / "f.sqlite")
    kw = dict(cache=cache, progress=False, max_doc_tokens=32)
    plain = PointwiseReranker(tiny_backend, **kw).rerank_run(small_run, dl19.queries, dl19.corpus, depth=6)
    only_rr = PointwiseReranker(tiny_backend, fusion=Fusion(1.0), **kw).rerank_run(
        small_run, dl19.queries, dl19.corpus, depth=6)
    only_first = PointwiseReranker(tiny_backend, fusion=Fusion(0.0, "minmax"), **kw).rerank_run(
        small_run, dl19.queries, dl19.corpus, depth=6)
    fused = PointwiseReranker(tiny_backend, fusion=0.8, **kw).rerank_run(small_run, dl19.queries, dl19.corpus, depth=6)
    assert fused.metadata["model_requests"] == 0  # fusion never changes what the model is asked
    for q in small_run:
        assert only_rr[q].docids == plain[q].docids
        assert only_first[q].docids == small_run[q].docids
        rr_s = {d.docid: d.score for d in plain[q].docs[:6]}
        bm = {d.docid: d.score for d in small_run[q].docs[:6]}
        z = lambda s: {k: (v - np.mean(list(s.values()))) / np.std(list(s.values())) for k, v in s.items()}
        zr, zb = z(rr_s), z(bm)
        want = sorted(rr_s, key=lambda d: -(0.8 * zr[d] + 0.2 * zb[d]))
        assert fused[q].docids[:6] == want
        assert [d.score for d in fused[q].docs[:6]] == pytest.approx(sorted((0.8 * zr[d] + 0.2 * zb[d] for d in want),
                                                                            reverse=True), abs=1e-6)
        assert fused[q].docids[6:] == small_run[q].docids[6:]
    with pytest.raises(RankstackError):
        Fusion(1.5)


def test_rerank_accepts_strings_docs_and_scored_docs(tiny_backend, dl19):
    rr = PointwiseReranker(tiny_backend, cache=False, progress=False)
    texts = ["The capital of France is Paris.", "Bananas are yellow.", "Paris hosts the Louvre."]
    r = rr.rerank("capital of france", texts)
    assert isinstance(r, Ranking) and sorted(r.docids) == ["0", "1", "2"]
    assert len(rr.rerank("capital of france", texts, k=2)) == 2
    r2 = rr.rerank(Query("q1", "capital of france"), [Doc(str(i), t) for i, t in enumerate(texts)])
    assert r2.qid == "q1" and r2.scores() == r.scores()
    q = sorted(dl19.run)[0]
    sd = dl19.run[q].docs[:4]
    r3 = rr.rerank(dl19.queries[q], sd, corpus=dl19.corpus)
    assert set(r3.docids) == {d.docid for d in sd}
    with pytest.raises(RankstackError):
        rr.rerank("x", sd)  # ScoredDoc without a corpus
    with pytest.raises(RankstackError):
        rr.rerank("x", [Doc("a", "t"), Doc("a", "u")])
    with pytest.raises(RankstackError):
        rr.rerank("x", [3.5])
    assert rr.rerank("x", []).docs == []


def test_rerank_run_errors_and_tail(tiny_backend, small_run, dl19):
    rr = PointwiseReranker(tiny_backend, cache=False, progress=False, max_doc_tokens=16)
    with pytest.raises(RankstackError):
        rr.rerank_run(small_run, dl19.queries, dl19.corpus, depth=0)
    with pytest.raises(RankstackError):
        rr.rerank_run(small_run, {}, dl19.corpus, depth=2)
    out = rr.rerank_run(small_run, dl19.queries, dl19.corpus, depth=2)
    for q, r in out.items():
        assert sorted(r.docids[:2]) == sorted(small_run[q].docids[:2])
        assert r.docids[2:] == small_run[q].docids[2:]
        s = [d.score for d in r.docs]
        assert all(a >= b for a, b in zip(s, s[1:]))
    assert out.metadata["queries"] == 3 and out.metadata["docs"] == 6 and out.metadata["depth"] == 2


def test_passages_truncated_query_kept_whole(tiny_backend):
    c = Counting(tiny_backend)
    rr = PointwiseReranker(c, cache=False, progress=False, max_doc_tokens=12)
    long_query = " ".join(f"query{i}" for i in range(60))
    long_doc = " ".join(f"passage{i}" for i in range(200))
    rr.rerank(long_query, [long_doc, "short passage"])
    users = [dict(p.messages)["user"] for p in c.prompts]
    assert all(long_query in u for u in users)
    cut = [u for u in users if "passage0" in u][0]
    passage = cut.split("Passage: ", 1)[1].split("\n\n")[0]
    assert tiny_backend.count_tokens(passage) <= 12 and long_doc.startswith(passage)
    assert any("Passage: short passage\n" in u for u in users)  # short ones untouched


def test_the_engine_docs_custom_paradigm_runs_as_written(tmp_path, capsys):
    """docs/engine.md's custom paradigm, executed as the page shows it: two rounds of PairRequests,
    the two queries' rounds batched together, identical requests run once, and a cached rerun
    costs no model call."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "engine.md").read_text(encoding="utf-8")
    block = page.split("## A custom paradigm")[1].split("```python\n")[1].split("```")[0]
    ns: dict = {}
    exec(compile(block, "docs/engine.md", "exec"), ns)
    stats, rankings = ns["stats"], ns["rankings"]
    # q1 "honey bees": a and c hold both words (1.0), b none; round 2 puts the shorter c first
    assert rankings["q1"].docids == ["c", "a", "b"] and rankings["q2"].docids[0] == "b"
    assert (stats.requests, stats.model_requests, stats.cache_hits) == (10, 9, 0)  # "a" asked twice in round 2
    assert stats.counts == {"no_overlap": 3} and stats.as_dict()["no_overlap"] == 3
    assert ns["out"].metadata["requests"] == 8 and ns["out"].metadata["queries"] == 2

    cached = ns["Overlap"](cache=str(tmp_path / "c.sqlite"), progress=False)
    calls = []
    cached.execute = lambda reqs, inner=cached.execute: calls.append(len(reqs)) or inner(reqs)
    first, st1 = ns["rerank_queries"](cached, ns["queries"], {q: ns["docs"] for q in ns["queries"]})
    again, st2 = ns["rerank_queries"](cached, ns["queries"], {q: ns["docs"] for q in ns["queries"]})
    assert calls == [6, 3] and st2.cache_hits == 10 and st2.model_requests == 0  # rounds batched across queries
    assert {q: r.docids for q, r in again.items()} == {q: r.docids for q, r in first.items()}
    merged = st1 + st2
    assert (merged.requests, merged.model_requests, merged.cache_hits) == (20, 9, 10)
    assert EngineStats.from_dict(merged.as_dict()).as_dict() == merged.as_dict()
