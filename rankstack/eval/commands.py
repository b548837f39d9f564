"""CLI: ``rankstack eval``: TREC runs side by side with paired significance marks."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MISSING_HELP = ("count judged queries a run lacks as 0 over all judged queries (TREC's convention, trec_eval -c); "
                "default: score the judged queries every run holds and say which were left out")


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="evaluate TREC runs (ir-measures), side by side with significance marks")
    p.add_argument("runs", nargs="+", help="TREC run files or dataset names (their first-stage run: dl19); "
                                         "NAME=PATH to label a column")
    p.add_argument("--qrels", required=True, help="qrels file or dataset name (dl19, vaswani, cacm)")
    p.add_argument("-m", "--measure", action="append", dest="measures",
                   help='measure (repeatable), e.g. -m nDCG@10 -m "R(rel=2)@100"; default nDCG@10')
    p.add_argument("--rel", type=int, default=None, help="relevance level for binary measures without one (TREC DL: 2)")
    p.add_argument("--baseline", default=None, help="run name to test the others against (default: the first)")
    p.add_argument("--missing-as-zero", action="store_true", help=MISSING_HELP)
    p.add_argument("--per-query", action="store_true", help="print per-query values too")
    p.set_defaults(func=cmd_eval)


def _named(spec: str) -> tuple[str, str]:
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name, path
    from pathlib import Path

    return Path(spec).name, spec


def eval_table(runs, qrels_arg: str, measures, rel: int | None = None, baseline: str | None = None,
               missing_as_zero: bool = False) -> tuple[str, dict]:
    """The table ``rankstack eval`` prints (with its ``note:`` lines) for ``{name: Run}`` against a
    qrels file or dataset name; also the per-query values. Shared by ``rerank --qrels``."""
    from rankstack.data.datasets import dataset_rel, resolve_qrels
    from rankstack.eval import evaluate_runs, format_table

    qrels = resolve_qrels(qrels_arg)
    rel = rel if rel is not None else dataset_rel(qrels_arg)
    per, cov = evaluate_runs(runs, qrels, measures, rel, missing_as_zero)
    base = baseline or (next(iter(per)) if len(per) > 1 else None)
    lines = [format_table(per, baseline=base)] + [f"note: {m}" for m in cov.messages()]
    return "\n".join(lines), per


def cmd_eval(args) -> int:
    from rankstack.data.datasets import check_inputs, resolve_run

    named = [_named(spec) for spec in args.runs]
    check_inputs(run=[path for _, path in named], qrels=args.qrels)
    runs = {name: resolve_run(path) for name, path in named}
    table, per = eval_table(runs, args.qrels, args.measures or ["nDCG@10"], args.rel, args.baseline,
                            args.missing_as_zero)
    print(table)
    if args.per_query:
        for name, ms in per.items():
            for m, vals in ms.items():
                for q, v in vals.items():
                    print(f"{name}\t{m}\t{q}\t{v:.4f}")
    return 0
