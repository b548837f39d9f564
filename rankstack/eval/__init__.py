"""Evaluation: ir-measures metrics, paired significance tests, one table printer."""

from rankstack.eval.metrics import evaluate, parse_measures
from rankstack.eval.significance import paired_ttest
from rankstack.eval.coverage import coverage
from rankstack.eval.table import compare, evaluate_runs, format_table, table_cells

__all__ = ["evaluate", "parse_measures", "paired_ttest", "compare", "coverage", "evaluate_runs", "format_table", "table_cells"]
