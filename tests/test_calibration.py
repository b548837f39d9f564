"""relevance_score in [0, 1], monotone in the reranker's score: each documented calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.calibration import relevance_scores, sigmoid
from rankstack.rerankers.dense import DenseReranker
from rankstack.rerankers.groupwise import GroupwiseReranker
from rankstack.rerankers.pointwise import NO_FORMS, YES_FORMS, PointwiseReranker
from rankstack.rerankers.rubric import RubricReranker
from rankstack.types import Doc, Ranking


def _ranking(scores):
    return Ranking.from_scores("q", [(str(i), s) for i, s in enumerate(scores)])


def _check_monotone(rel, ranking):
    assert all(0.0 <= r <= 1.0 for r in rel)
    assert all(a >= b for a, b in zip(rel, rel[1:])), "relevance must not reorder the ranking"
    assert len(rel) == len(ranking.docs)


def test_sigmoid_is_stable_and_exact():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(math.log(3)) == pytest.approx(0.75)
    assert sigmoid(-1e4) == 0.0 and sigmoid(1e4) == 1.0  # no overflow at the clipped log-odds


def test_pointwise_yesno_relevance_is_the_yes_probability(tiny_lm):
    model, tok = tiny_lm
    be = HFBackend(model="tiny", model_obj=model, tokenizer=tok)
    rr = PointwiseReranker(be, "yesno", cache=False, progress=False)
    docs = [Doc("a", "fleas live up to a year"), Doc("b", "stock markets fell"), Doc("c", "flea eggs hatch")]
    ranking = rr.rerank("flea life cycle", docs)
    rel = dict(zip(ranking.docids, relevance_scores(rr, ranking)))
    from rankstack.types import Query

    lp = be.next_token_logprobs([rr.prompt(Query("q", "flea life cycle"), rr.prepare_doc(d)) for d in docs],
                                YES_FORMS + NO_FORMS)
    for d, row in zip(docs, np.asarray(lp, dtype=np.float64)):
        p_yes, p_no = np.exp(row[:4]).sum(), np.exp(row[4:]).sum()
        assert rel[d.docid] == pytest.approx(p_yes / (p_yes + p_no), abs=1e-5)
    _check_monotone(relevance_scores(rr, ranking), ranking)


def test_each_documented_scale():
    assert relevance_scores(PointwiseReranker(None, "score10", cache=False), _ranking([7.5, 2.0])) == [0.75, 0.2]
    assert relevance_scores(PointwiseReranker(None, "prorank", cache=False), _ranking([0.0])) == [0.5]
    qlm = relevance_scores(PointwiseReranker(None, "qlm", cache=False), _ranking([-0.5, -2.0, -40.0]))
    assert qlm == pytest.approx([math.exp(-0.5), math.exp(-2.0), math.exp(-40.0)])
    dense = DenseReranker(encoder=object(), cache=False)
    assert relevance_scores(dense, _ranking([1.0, 0.0, -1.0])) == [1.0, 0.5, 0.0]
    assert relevance_scores(GroupwiseReranker(None, cache=False), _ranking([0.9, 0.3])) == [0.9, 0.3]
    rubric = RubricReranker(None, budget="3@1,2@1", temperature=0.6, cache=False)  # 2 passes: top 201
    r = _ranking([101 + 80, 101 + 10, 55.0, -1.0])
    rel = relevance_scores(rubric, r)
    assert rel[:3] == pytest.approx([181 / 201, 111 / 201, 55 / 201]) and rel[3] == 0.0
    _check_monotone(rel, r)


def test_fusion_and_order_only_rerankers():
    fused = PointwiseReranker(None, "yesno", fusion=0.8, cache=False)  # z-scores: a squash, no probability
    r = _ranking([1.2, 0.1, -1.3])
    assert relevance_scores(fused, r) == pytest.approx([sigmoid(1.2), sigmoid(0.1), sigmoid(-1.3)])
    from rankstack.rerankers.base import Reranker

    order_only = Reranker(None, cache=False)
    r = Ranking.from_order("q", ["c", "a", "b", "d"])
    rel = relevance_scores(order_only, r)
    assert rel == [1.0, 0.75, 0.5, 0.25]
    _check_monotone(rel, r)
