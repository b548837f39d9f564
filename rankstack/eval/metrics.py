"""Evaluation through ir-measures: aggregate and per-query values.

nDCG uses the graded judgements; binary measures (R, P, RR, AP, ...) take a relevance
level ``rel`` (TREC DL counts grade >= 2 as relevant). A measure string that already
names ``rel`` keeps it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from rankstack.data.trec import qrels_to_ir_measures
from rankstack.eval.coverage import coverage
from rankstack.errors import RankstackError
from rankstack.types import Qrels, Run

DEFAULT_MEASURES = ("nDCG@10",)
log = logging.getLogger(__name__)

_GRADED = {"nDCG", "ERR", "Judged", "NumRet", "NumQ", "NumRel", "Rprec_mult", "infAP", "alpha_nDCG", "RBP"}


def parse_measures(measures: Iterable[str] | str, rel: int | None = None) -> list:
    """ir-measures measure objects from names.

    Args:
        measures: names (``"nDCG@10"``, ``"RR@10"``, ``"R@100"``) or measure objects, or one name.
        rel: the relevance level given to binary measures that do not name one.

    Returns:
        The measures.

    Raises:
        RankstackError: an unknown measure.
    """
    import ir_measures

    out = []
    for m in [measures] if isinstance(measures, str) else measures:
        try:
            parsed = ir_measures.parse_measure(m) if isinstance(m, str) else m
        except (ValueError, NameError, SyntaxError) as e:
            raise RankstackError(f"unknown measure {m!r} ({e})") from None
        if rel is not None and parsed.NAME not in _GRADED and "rel" in getattr(parsed, "SUPPORTED_PARAMS", {}) \
                and "rel" not in parsed.params:
            parsed = parsed(rel=rel)
        out.append(parsed)
    return out


def evaluate(run: Run, qrels: Qrels, measures: Sequence[str] | str = DEFAULT_MEASURES, rel: int | None = None,
             per_query: bool = False, judged_only: bool = True, missing_as_zero: bool = False):
    """Evaluate a run with ir-measures, over the judged queries the run holds (a warning names
    the judged queries it lacks; see :mod:`rankstack.eval.coverage`).

    Args:
        run: the run.
        qrels: ``{qid: {docid: grade}}``.
        measures: measure names (``"nDCG@10"``, ``["nDCG@10", "R@100"]``).
        rel: the relevance level of binary measures (TREC DL: 2); nDCG always uses the grades.
        per_query: return per-query values instead of means.
        judged_only: average over judged queries (False: every query of the run, unjudged ones 0).
        missing_as_zero: score every judged query, one the run lacks as 0 (TREC's convention,
            ``trec_eval -c``).

    Returns:
        ``{measure: mean}``, or with ``per_query`` ``{measure: {qid: value}}``.
    """
    ms = parse_measures(measures, rel)
    if judged_only:
        name = getattr(run, "name", "") or "the run"
        cov = coverage({"the run" if name == "rankstack" else name: run}, qrels, missing_as_zero)
        for msg in cov.messages():
            log.warning(msg)
        qids = cov.qids
    else:
        qids = list(run)
    per_q = per_query_values(run, qrels, ms, qids)
    if per_query:
        return per_q
    return {k: (sum(v.values()) / len(v) if v else 0.0) for k, v in per_q.items()}


def per_query_values(run: Run, qrels: Qrels, measures: Sequence, qids: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{measure: {qid: value}}`` for exactly ``qids`` (a query the run lacks scores 0);
    ``measures`` parsed (:func:`parse_measures`)."""
    import ir_measures

    per_q: dict[str, dict[str, float]] = {str(m): {q: 0.0 for q in qids} for m in measures}
    ir_qrels = list(qrels_to_ir_measures(qrels))
    for metric in ir_measures.iter_calc(list(measures), ir_qrels, list(run.to_ir_measures())):
        key = str(metric.measure)
        if metric.query_id in per_q[key]:
            per_q[key][metric.query_id] = float(metric.value)
    return per_q
