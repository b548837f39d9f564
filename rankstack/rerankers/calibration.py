"""Relevance scores in [0, 1] from any reranker's raw scores (the rerank APIs' ``relevance_score``).

Rerankers score on different scales: log-odds, 0-10 expected values, cosines, rank positions.
RAG frameworks and the Jina / Cohere / TEI APIs expect a ``relevance_score`` in [0, 1] that is
higher for more relevant documents. :func:`relevance_scores` maps a :class:`Ranking`'s raw
scores to that range, monotone (never reordering, so the ranking's order is kept) in the raw
score, with one documented calibration per kind of score:

==========================================  ========================================================
reranker (raw score)                         relevance_score
==========================================  ========================================================
pointwise ``yesno`` (log p(yes) - log p(no))  sigmoid = p(yes) / (p(yes) + p(no)), the yes-probability
pointwise ``prorank`` (logit 1 - logit 0)     sigmoid = p("1") / (p("1") + p("0"))
pointwise ``score10`` / ``erank`` (0-10)      score / 10
pointwise ``qlm`` (mean log p(query token))   exp = the per-token geometric-mean probability of the query
cross_encoder (the model's logit)             sigmoid (the activation ms-marco cross-encoders train with)
dense, cosine (in [-1, 1])                    (1 + cos) / 2
dense, dot product                            sigmoid
groupwise (mean of 0-10 / 10, in [0, 1])      unchanged
rubric (pass p scores ``101 p + s``, s 0-100)  score / (101 (P - 1) + 100) for P passes; unscored 0
with fusion, z-score (a weighted z-score)     sigmoid of the fused z-score (a rank-preserving squash:
                                             no probability meaning)
with fusion, min-max (in [0, 1])              unchanged
order-only (first, listwise, setwise, any    1 - r / n for the document at 0-based rank r of n:
other reranker)                              a rank position, comparable only within one request
==========================================  ========================================================

A reranker class can give its own calibration by defining ``relevance_score(score) -> float``
(the remote client does: its scores already are the server's relevance scores).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rankstack.types import Ranking


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def score_map(reranker) -> Callable[[float], float] | None:
    """The per-score calibration of ``reranker``, or None where only the rank carries meaning."""
    own = getattr(reranker, "relevance_score", None)
    if callable(own):
        return own
    fusion = getattr(reranker, "fusion", None)
    if fusion is not None:
        return _clip if fusion.norm == "minmax" else sigmoid
    from rankstack.rerankers.cross_encoder import CrossEncoderReranker
    from rankstack.rerankers.dense import DenseReranker
    from rankstack.rerankers.groupwise import GroupwiseReranker
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.rerankers.rubric import RubricReranker

    if isinstance(reranker, PointwiseReranker):
        if reranker.method in ("yesno", "prorank"):
            return sigmoid
        if reranker.method in ("score10", "erank"):
            return lambda s: _clip(s / 10.0)
        if reranker.method == "qlm":
            return lambda s: _clip(math.exp(min(0.0, s)))
        return None  # a method without a known scale: rank positions
    if isinstance(reranker, CrossEncoderReranker):
        return sigmoid
    if isinstance(reranker, DenseReranker):
        return (lambda s: _clip((1.0 + s) / 2.0)) if reranker.similarity == "cosine" else sigmoid
    if isinstance(reranker, GroupwiseReranker):
        return _clip
    if isinstance(reranker, RubricReranker):
        top = 101.0 * (len(reranker.passes) - 1) + 100.0
        return lambda s: _clip(s / top)
    return None


def relevance_scores(reranker, ranking: Ranking) -> list[float]:
    """Relevance in [0, 1] for each document of ``ranking`` (in its order), see the module docstring."""
    f = score_map(reranker)
    if f is not None:
        return [float(f(d.score)) for d in ranking.docs]
    n = len(ranking.docs)
    return [1.0 - r / n for r in range(n)]
