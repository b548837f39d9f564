"""CLI: ``rankstack report``: runs compared on one self-contained HTML page."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    from rankstack.eval.commands import MISSING_HELP

    p = sub.add_parser("report", help="compare runs on one self-contained HTML page (tables, per-query charts, "
                                      "top passages, cost)")
    p.add_argument("runs", nargs="+", help="TREC run files or dataset names (NAME=PATH to label one); RUN.meta.json is read when present")
    p.add_argument("--qrels", required=True, help="qrels file or dataset name (dl19, vaswani, cacm)")
    p.add_argument("--queries", default=None, help="topics file or dataset name: query text (else ids)")
    p.add_argument("--corpus", default=None, help="corpus file or dataset name: passage text (else docids)")
    p.add_argument("-m", "--measure", action="append", dest="measures",
                   help='measure (repeatable), e.g. -m nDCG@10 -m "R(rel=2)@100"; default nDCG@10')
    p.add_argument("--rel", type=int, default=None, help="relevance level for binary measures without one (TREC DL: 2)")
    p.add_argument("--baseline", default=None, help="run name the others are compared with (default: the first)")
    p.add_argument("--top", type=int, default=10, help="passages listed per query and run (default 10)")
    p.add_argument("--words", type=int, default=12, help="words of each passage shown (default 12)")
    p.add_argument("--title", default=None)
    p.add_argument("--missing-as-zero", action="store_true", help=MISSING_HELP)
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from pathlib import Path

    from rankstack.data.datasets import check_inputs
    from rankstack.errors import RankstackError
    from rankstack.eval.commands import _named
    from rankstack.report import write_report

    check_inputs(run=[_named(r)[1] for r in args.runs], qrels=args.qrels, topics=args.queries, corpus=args.corpus)
    if Path(args.out).is_dir():
        raise RankstackError(f"-o {args.out}: is a folder; give the HTML file to write")
    size = write_report(args.out, args.runs, args.qrels, queries=args.queries, corpus=args.corpus,
                        measures=args.measures or ["nDCG@10"], baseline=args.baseline, rel=args.rel, top=args.top,
                        words=args.words, title=args.title, missing_as_zero=args.missing_as_zero)
    print(f"wrote {args.out} ({size:,} bytes)")
    return 0
