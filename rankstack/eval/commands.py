"""CLI: ``rankstack eval``: TREC runs side by side with paired significance marks."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="evaluate TREC runs (ir-measures), side by side with significance marks")
    p.add_argument("runs", nargs="+", help="TREC run files or dataset names (their first-stage run: dl19); "
                                         "NAME=PATH to label a column")
    p.add_argument("--qrels", required=True, help="qrels file or dataset name (dl19, vaswani, cacm)")
    p.add_argument("-m", "--measure", action="append", dest="measures",
                   help='measure (repeatable), e.g. -m nDCG@10 -m "R(rel=2)@100"; default nDCG@10')
    p.add_argument("--rel", type=int, default=None, help="relevance level for binary measures without one (TREC DL: 2)")
    p.add_argument("--baseline", default=None, help="run name to test the others against (default: the first)")
    p.add_argument("--per-query", action="store_true", help="print per-query values too")
    p.set_defaults(func=cmd_eval)


def _named(spec: str) -> tuple[str, str]:
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name, path
    from pathlib import Path

    return Path(spec).name, spec


def cmd_eval(args) -> int:
    from rankstack.data.datasets import SPECS, resolve_qrels, resolve_run
    from rankstack.eval import evaluate, format_table

    measures = args.measures or ["nDCG@10"]
    qrels = resolve_qrels(args.qrels)
    rel = args.rel if args.rel is not None else (SPECS[args.qrels].rel if args.qrels in SPECS else None)
    per = {}
    for spec in args.runs:
        name, path = _named(spec)
        per[name] = evaluate(resolve_run(path), qrels, measures, rel=rel, per_query=True)
    print(format_table(per, baseline=args.baseline or (next(iter(per)) if len(per) > 1 else None)))
    if args.per_query:
        for name, ms in per.items():
            for m, vals in ms.items():
                for q, v in vals.items():
                    print(f"{name}\t{m}\t{q}\t{v:.4f}")
    return 0
