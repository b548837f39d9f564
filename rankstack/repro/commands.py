"""CLI: ``rankstack repro``: run reproduction conditions, check each, write the reproduction page."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    p = sub.add_parser("repro", help="run the reproduction conditions (commands with expected numbers), check "
                                     "each against its tolerance, write docs/reproduction.md")
    p.add_argument("--conditions", default=None, help="conditions YAML (default: the packaged rankstack/repro/"
                                                      "conditions.yaml)")
    p.add_argument("--quick", action="store_true", help="only the conditions marked quick (minutes on 2 cores)")
    p.add_argument("--only", nargs="+", metavar="ID", help="only these condition ids (shell patterns: 'dl19-*')")
    p.add_argument("--list", action="store_true", help="list the selected conditions and their commands; run nothing")
    p.add_argument("--out", default=None, metavar="MD", help="write the reproduction page (Markdown) here, "
                                                             "e.g. docs/reproduction.md")
    p.add_argument("--html", default=None, metavar="FILE", help="write the page as self-contained HTML too")
    p.add_argument("--root", default=None, help="folder the commands run in and results files are read from "
                                                "(default: the checkout rankstack runs from, else the current folder)")
    p.add_argument("--timeout", type=float, default=None, help="seconds one command may take (default: no limit)")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep each command's $WORK folder and output.txt here")
    p.set_defaults(func=cmd_repro)


def _first_line(command: str) -> str:
    """A command's first line, `` ...`` when more follow."""
    first = command.splitlines()[0].rstrip(" \\")
    return first + (" ..." if "\n" in command else "")


def _list(conditions, root) -> int:
    from rankstack.eval.table import format_cells
    from rankstack.repro.conditions import recorded_number
    from rankstack.repro.page import Row, machine_text

    rows = []
    for c in conditions:
        r = Row(c, recorded_number(c, root), None)
        rows.append([c.id, "yes" if c.quick else "", c.metric, r.expected(), r.value(), machine_text(c),
                     _first_line(c.command)])
    print(format_cells(["id", "quick", "metric", "expected", "recorded", "measured on", "command"], rows))
    return 0


def _invocation(args) -> str:
    """The command line that selects and writes what ``args`` do (for the page's summary)."""
    parts = ["rankstack", "repro"] + (["--quick"] if args.quick else []) + (["--only", *args.only] if args.only else [])
    for flag, value in (("--conditions", args.conditions), ("--out", args.out), ("--html", args.html)):
        parts += [flag, value] if value else []
    return " ".join(shlex.quote(p) for p in parts)


def cmd_repro(args) -> int:
    from rankstack.hardware import describe
    from rankstack.repro import page
    from rankstack.repro.conditions import load_conditions, recorded_number, select
    from rankstack.repro.runner import default_root, machine_kind, run_conditions

    root = Path(args.root) if args.root else default_root()
    every = load_conditions(args.conditions)
    chosen = select(every, args.only, args.quick)
    if args.list:
        return _list(chosen, root)
    kind = machine_kind()
    print(f"hardware: {describe()}; CPU kind {kind}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{len(chosen)} of {len(every)} conditions; {len({c.command for c in chosen})} commands; root {root}",
          flush=True)

    def started(i, n, cond):
        print(f"[{i}/{n}] {cond.id}: {_first_line(cond.command)}", file=sys.stderr, flush=True)

    outcomes = run_conditions(chosen, root, timeout=args.timeout, keep=Path(args.keep) if args.keep else None,
                              on_command=started)
    print(page.text_table(outcomes, {c.id: recorded_number(c, root) for c in chosen}))
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    invoked = _invocation(args)
    table = page.rows(every, outcomes, root)
    machine = f"{describe()} (CPU kind {kind})"
    for path, render in ((args.out, page.markdown), (args.html, page.html)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(render(table, machine, invoked) + ("\n" if render is page.markdown else ""),
                                  encoding="utf-8")
            print(f"wrote {path}")
    failed = [o for o in outcomes if o.failed]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} checks failed: {', '.join(o.condition.id for o in failed)}",
              file=sys.stderr)
    return 1 if failed else 0
