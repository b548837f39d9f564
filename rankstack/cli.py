"""``rankstack`` command line: retrieve | rerank | eval | report | convert | train | serve | demo | index | repro.

Each area adds its own subcommands from the module that owns it (``COMMANDS`` below), so
this file stays a thin dispatcher; no library module imports it.

Errors are one line on stderr, ``rankstack CMD: error: ...`` (a traceback only with ``-v``);
exit codes: 0 done, 1 error (bad input, a file that cannot be read, a model that fails to load),
2 usage (argparse's own, and option values a command refuses), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rankstack.errors import Interrupted, RankstackError, UsageError

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

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rankstack", description="LLM reranking for retrieval pipelines.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug); "
                                                                       "-v also shows an error's traceback")
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


def error_line(e: BaseException) -> str:
    """One line for an error: an OS error names the path and what went wrong, not the errno."""
    if isinstance(e, OSError) and not isinstance(e, RankstackError) and e.strerror:
        where = f"{e.filename}: " if e.filename is not None else ""
        return f"{where}{e.strerror}"
    text = str(e) or type(e).__name__
    return " ".join(text.split())  # one line, whatever the message held


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if hasattr(args, "threads") and args.threads is None:  # the cores actually free, for every command
        from rankstack.hardware import default_threads

        args.threads, args.threads_auto = default_threads(), True
    try:
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, Interrupted) as e:
        msg = str(e) if isinstance(e, Interrupted) else "interrupted"
        return _fail(args, e, msg, EXIT_INTERRUPTED)
    except (RankstackError, OSError, ImportError) as e:
        return _fail(args, e, error_line(e), EXIT_USAGE if isinstance(e, UsageError) else EXIT_ERROR)


def _fail(args, e: BaseException, message: str, code: int) -> int:
    if args.verbose:
        import traceback

        traceback.print_exception(e)
    print(f"rankstack {args.command}: error: {message}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
