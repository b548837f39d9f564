"""Paired significance tests over per-query values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    n: int
    mean_diff: float


def paired_ttest(a: dict[str, float], b: dict[str, float]) -> TestResult:
    """Two-sided paired t-test over the queries both dicts hold (b - a).

    Args:
        a: per-query values of the baseline.
        b: per-query values of the other run.

    Returns:
        The :class:`TestResult` (t, p, the number of queries, the mean difference); NaN with fewer
        than two shared queries.
    """
    from scipy import stats

    qids = sorted(set(a) & set(b))
    if len(qids) < 2:
        return TestResult(float("nan"), float("nan"), len(qids), float("nan"))
    xa = [a[q] for q in qids]
    xb = [b[q] for q in qids]
    diffs = [y - x for x, y in zip(xa, xb)]
    mean_diff = sum(diffs) / len(diffs)
    if all(d == diffs[0] for d in diffs):  # zero variance: t undefined; identical runs are not different
        return TestResult(0.0 if mean_diff == 0 else float("inf"), 1.0 if mean_diff == 0 else 0.0, len(qids), mean_diff)
    res = stats.ttest_rel(xb, xa)
    return TestResult(float(res.statistic), float(res.pvalue), len(qids), mean_diff)
