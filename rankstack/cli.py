"""``rankstack`` command line: retrieve | rerank | eval | report | convert | train | serve | demo | index | repro.

Each area adds its own subcommands from the module that owns it (``COMMANDS`` below), so
this file stays a thin dispatcher; no library module imports it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rankstack.errors import RankstackError

#: subcommand modules; each has ``add_parsers(subparsers)`` registering commands whose
#: ``func(args) -> int`` runs them. A module that is absent (optional part) is skipped.
COMMANDS = [
    "rankstack.eval.commands",
    "rankstack.report.commands",
    "rankstack.data.commands",
    "rankstack.demo",
    "rankstack.retrieval.commands",
    "rankstack.rerankers.commands",
    "rankstack.training.commands",
    "rankstack.serve.commands",
    "rankstack.repro.commands",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rankstack", description="LLM reranking for retrieval pipelines.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMANDS:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):
                continue
            raise
        m.add_parsers(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (RankstackError, FileNotFoundError) as e:
        print(f"rankstack {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
