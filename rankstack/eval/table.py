"""One table printer for the CLI and the benchmarks: runs side by side, significance marks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rankstack.eval.coverage import Coverage, coverage
from rankstack.eval.metrics import parse_measures, per_query_values
from rankstack.eval.significance import paired_ttest
from rankstack.types import Qrels, Run


def evaluate_runs(runs: Mapping[str, Run], qrels: Qrels, measures: Sequence[str] | str, rel: int | None = None,
                  missing_as_zero: bool = False) -> tuple[dict[str, dict[str, dict[str, float]]], Coverage]:
    """Several runs on one query set (:func:`rankstack.eval.coverage.coverage`: the judged
    queries every run holds, or with ``missing_as_zero`` all judged ones): ``(run -> measure ->
    qid -> value, the coverage)``; ``coverage.messages()`` say what was left out."""
    cov = coverage(runs, qrels, missing_as_zero)
    ms = parse_measures(measures, rel)
    return {n: per_query_values(r, qrels, ms, cov.qids) for n, r in runs.items()}, cov


def compare(runs: Mapping[str, Run], qrels: Qrels, measures: Sequence[str], rel: int | None = None,
            baseline: str | None = None, alpha: float = 0.05, missing_as_zero: bool = False) -> str:
    """Evaluate several runs and return the table (PyTerrier's ``Experiment`` in one call).

    Args:
        runs: ``{name: Run}``, in table order.
        qrels: the judgements.
        measures: measure names.
        rel: the relevance level of binary measures.
        baseline: the run each other run is tested against with a paired t-test per measure
            (default: the first); ``+``/``-`` mark a significant gain/loss.
        alpha: the significance level.
        missing_as_zero: score all judged queries, those a run lacks as 0 (default: the judged
            queries every run holds; a line under the table says which were left out).

    Returns:
        The table as text.
    """
    names = list(runs)
    per, cov = evaluate_runs(runs, qrels, measures, rel, missing_as_zero)
    base = baseline if baseline is not None else (names[0] if len(names) > 1 else None)
    return "\n".join([format_table(per, baseline=base, alpha=alpha)] + [f"note: {m}" for m in cov.messages()])


def table_cells(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str | None = None,
                alpha: float = 0.05, digits: int = 4, extra: Mapping[str, Mapping[str, str]] | None = None
                ) -> tuple[list[str], list[list[str]], str]:
    """The table as cells; :func:`format_table` prints them, the HTML report draws the same ones.

    Args:
        per_query: run -> measure -> qid -> value (rows in this order).
        baseline: the run the others are tested against (paired t-test), or None.
        alpha: the significance level of the ``+``/``-`` marks.
        digits: decimals of each mean.
        extra: run -> column -> text (speed, counts), extra columns after the measures.

    Returns:
        ``(header, rows, footnote)``.
    """
    names = list(per_query)
    measures = list(next(iter(per_query.values()))) if names else []
    extra_cols: list[str] = []
    for cols in (extra or {}).values():
        extra_cols += [c for c in cols if c not in extra_cols]
    header = ["run"] + measures + extra_cols
    rows = []
    for n in names:
        row = [n]
        for m in measures:
            vals = per_query[n][m]
            mean = sum(vals.values()) / len(vals) if vals else 0.0
            mark = ""
            if baseline is not None and n != baseline and baseline in per_query:
                t = paired_ttest(per_query[baseline][m], vals)
                if t.p_value == t.p_value and t.p_value < alpha:
                    mark = "+" if t.mean_diff > 0 else "-"
            row.append(f"{mean:.{digits}f}{mark}")
        row += [(extra or {}).get(n, {}).get(c, "") for c in extra_cols]
        rows.append(row)
    n_q = len(next(iter(next(iter(per_query.values())).values()))) if names and measures else 0
    foot = f"{n_q} queries"
    if baseline is not None and len(names) > 1:
        foot += f"; +/- : paired t-test vs {baseline}, p < {alpha}"
    return header, rows, foot


def format_table(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str | None = None,
                 alpha: float = 0.05, digits: int = 4, extra: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The table as aligned text (what ``rankstack eval`` and ``compare`` print).

    Args:
        per_query: run -> measure -> qid -> value.
        baseline: the run the others are tested against, or None.
        alpha: the significance level.
        digits: decimals of each mean.
        extra: run -> column -> text (speed, counts).

    Returns:
        The table, with its footnote as the last line.
    """
    header, rows, foot = table_cells(per_query, baseline, alpha, digits, extra)
    return format_cells(header, rows) + "\n" + foot


def format_cells(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Cells as an aligned text table: the first column left-aligned, the others right-aligned,
    a rule under the header.

    Args:
        header: the column names.
        rows: one sequence of cells per row, as many as ``header``.

    Returns:
        The table's lines joined by newlines (no trailing newline).
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])
