"""Fusion of rankings: reciprocal rank fusion and per-query normalised score interpolation.

Used to combine first-stage runs (BM25 + dense) and to fuse a reranker with its first stage
(``w * rerank + (1 - w) * first_stage`` after per-query z-score or min-max normalisation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rankstack.errors import RankstackError
from rankstack.types import Ranking, Run

NORMS = ("zscore", "minmax", "none")


def normalize(scores: Mapping[str, float], method: str = "zscore") -> dict[str, float]:
    """Per-query normalisation.

    Args:
        scores: ``{docid: score}``.
        method: ``zscore`` or ``minmax``.

    Returns:
        The normalised scores (constant scores map to 0 for z-score, 0.5 for min-max).
    """
    if method not in NORMS:
        raise RankstackError(f"unknown normalisation {method!r}; one of {NORMS}")
    if not scores or method == "none":
        return dict(scores)
    vals = list(scores.values())
    if method == "zscore":
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        return {d: ((s - mean) / sd if sd > 0 else 0.0) for d, s in scores.items()}
    lo, hi = min(vals), max(vals)
    return {d: ((s - lo) / (hi - lo) if hi > lo else 0.5) for d, s in scores.items()}


def interpolate_rankings(rankings: Sequence[Ranking], weights: Sequence[float], norm: str = "zscore",
                         missing: float | None = None) -> Ranking:
    """Weighted sum of normalised scores (one query).

    Args:
        rankings: the query's rankings from several systems.
        weights: one weight per ranking.
        norm: ``zscore`` or ``minmax``.
        missing: the normalised score of a doc absent from a ranking (default: that ranking's
            minimum).

    Returns:
        The fused ranking, best first.
    """
    if len(rankings) != len(weights):
        raise RankstackError("one weight per ranking")
    qid = rankings[0].qid
    normed = [normalize(r.scores(), norm) for r in rankings]
    order: list[str] = []
    seen: set[str] = set()
    for r in rankings:
        for d in r.docids:
            if d not in seen:
                seen.add(d)
                order.append(d)
    fused = {}
    for d in order:
        total = 0.0
        for w, n in zip(weights, normed):
            if d in n:
                total += w * n[d]
            else:
                total += w * (missing if missing is not None else (min(n.values()) if n else 0.0))
        fused[d] = total
    return Ranking.from_scores(qid, [(d, fused[d]) for d in order])


def rrf_rankings(rankings: Sequence[Ranking], k: int = 60, weights: Sequence[float] | None = None) -> Ranking:
    """Reciprocal rank fusion of one query's rankings: sum of w / (k + rank) (Cormack et al. 2009).

    Args:
        rankings: the rankings.
        k: the rank constant (60).
        weights: one weight per ranking (default 1).

    Returns:
        The fused ranking, best first.
    """
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = {}
    order: list[str] = []
    for w, r in zip(weights, rankings):
        for rank, d in enumerate(r.docids, 1):
            if d not in fused:
                fused[d] = 0.0
                order.append(d)
            fused[d] += w / (k + rank)
    return Ranking.from_scores(rankings[0].qid, [(d, fused[d]) for d in order])


def _per_query(runs: Sequence[Run], fn, name: str) -> Run:
    qids: list[str] = []
    for r in runs:
        qids += [q for q in r if q not in qids]
    out = Run(name=name)
    for q in qids:
        present = [r[q] for r in runs if q in r]
        out[q] = fn(present, [i for i, r in enumerate(runs) if q in r])
    return out


def rrf(runs: Sequence[Run], k: int = 60, weights: Sequence[float] | None = None, depth: int | None = None,
        name: str = "rrf") -> Run:
    """Reciprocal rank fusion of whole runs, query by query (a query some runs lack is fused from
    the runs that hold it).

    Args:
        runs: the runs.
        k: the rank constant (60).
        weights: one weight per run (default 1).
        depth: use each run's top ``depth`` (None: all).
        name: the fused run's name.

    Returns:
        The fused :class:`Run`.
    """
    w = list(weights or [1.0] * len(runs))
    return _per_query(runs, lambda rs, idx: rrf_rankings([r.top(depth) for r in rs], k, [w[i] for i in idx]), name)


def interpolate(runs: Sequence[Run], weights: Sequence[float], norm: str = "zscore", depth: int | None = None,
                name: str = "fusion") -> Run:
    """Score interpolation of whole runs, query by query: the weighted sum of per-query normalised
    scores (:func:`interpolate_rankings`).

    Args:
        runs: the runs.
        weights: one weight per run.
        norm: ``zscore`` or ``minmax``.
        depth: use each run's top ``depth`` (None: all).
        name: the fused run's name.

    Returns:
        The fused :class:`Run`.

    Raises:
        RankstackError: not one weight per run.
    """
    w = list(weights)
    if len(w) != len(runs):
        raise RankstackError("one weight per run")
    return _per_query(runs, lambda rs, idx: interpolate_rankings([r.top(depth) for r in rs], [w[i] for i in idx], norm), name)
