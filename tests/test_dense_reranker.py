"""The dense (bi-encoder) reranker on the real all-MiniLM-L6-v2 (``minilm-l6``) and real DL19 data."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.cli import main
from rankstack.data.trec import read_run
from rankstack.errors import RankstackError
from rankstack.eval import evaluate
from rankstack.rerankers import load_reranker
from rankstack.rerankers.dense import DenseReranker
from rankstack.rerankers.engine import rerank_queries
from rankstack.types import Doc, Run


@pytest.fixture(scope="module")
def encoder():
    from rankstack.retrieval.dense import load_encoder

    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def small_run(dl19):
    run = Run(name="bm25")
    for q in sorted(dl19.run)[:3]:
        run[q] = dl19.run[q].top(15)
    return run


def test_scores_are_the_cosine_of_sentence_transformers_embeddings(encoder, dl19, small_run):
    rr = DenseReranker(encoder=encoder, cache=False, progress=False)
    out = rr.rerank_run(small_run, dl19.queries, dl19.corpus, depth=10)
    for q, ranking in small_run.items():
        docs = dl19.corpus.get_many(ranking.docids[:10])
        qv = encoder.encode([dl19.queries[q].text], normalize_embeddings=True)[0]
        dv = encoder.encode([d.text for d in docs], normalize_embeddings=True)
        want = {d.docid: float(v @ qv) for d, v in zip(docs, dv)}
        got = out[q].scores()
        assert max(abs(got[d] - want[d]) for d in want) < 1e-5
        assert out[q].docids[:10] == sorted(want, key=lambda d: -want[d])  # best cosine first
        assert out[q].docids[10:] == ranking.docids[10:]  # the tail keeps first-stage order


def test_a_passage_shared_by_queries_is_encoded_once_and_cached(encoder, tmp_path):
    docs = [Doc("a", "Honey bees turn nectar into honey."), Doc("b", "The stock market fell on Monday."),
            Doc("c", "Bees store honey in wax combs.")]
    path = str(tmp_path / "dense.sqlite")
    rr = DenseReranker(encoder=encoder, cache=path, progress=False)
    from rankstack.types import Query

    queries = {"q1": Query("q1", "how do bees make honey"), "q2": Query("q2", "why did stocks fall")}
    out, stats = rerank_queries(rr, queries, {q: docs for q in queries})
    assert stats.model_requests == 2 + 3  # two queries, three passages: not 2 x 3
    assert out["q1"].docids[-1] == "b" and out["q2"].docids[0] == "b"
    again = DenseReranker(encoder=encoder, cache=path, progress=False)
    out2, stats2 = rerank_queries(again, queries, {q: docs for q in queries})
    assert stats2.model_requests == 0 and stats2.cache_hits == 8
    for q in queries:
        assert out2[q].scores() == pytest.approx(out[q].scores(), abs=0)  # float32 bytes round-trip exactly


def test_registry_strings_and_dot_similarity(encoder):
    rr = load_reranker("dense", model="minilm-l6", encoder=encoder, cache=False, progress=False)
    assert isinstance(rr, DenseReranker) and rr.backend is None
    r = rr.rerank("what do bees make", ["Bees make honey.", "Cars have wheels.", "Honey comes from bees."], k=2)
    assert set(r.docids) == {"0", "2"}
    dot = DenseReranker(encoder=encoder, similarity="dot", cache=False, progress=False)
    assert dot.fingerprint() != rr.fingerprint()
    with pytest.raises(RankstackError, match="similarity"):
        DenseReranker(encoder=encoder, similarity="l2")


@pytest.mark.slow
def test_dl19_top20_all_queries_beats_bm25(encoder, dl19, tmp_path):
    """All 43 DL19 queries, BM25 top-20 (860 pairs; top-100 takes minutes and is in
    benchmarks/dense_dl19.py): MiniLM reranking gives 0.5932 nDCG@10 (distill_dl19 results), BM25 0.5058."""
    out = tmp_path / "dense.trec"
    assert main(["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "dense",
                 "--model", "minilm-l6", "--depth", "20", "--no-cache", "--no-progress", "--out", str(out)]) == 0
    run = read_run(out)
    assert len(run) == 43
    ndcg = evaluate(run, dl19.qrels, ["nDCG@10"], rel=2)["nDCG@10"]
    bm25 = evaluate(dl19.run, dl19.qrels, ["nDCG@10"], rel=2)["nDCG@10"]
    assert bm25 == pytest.approx(0.5058, abs=1e-4)
    assert 0.57 < ndcg < 0.62, ndcg
    assert np.isfinite([d.score for r in run.values() for d in r.docs]).all()
