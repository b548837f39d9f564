"""Shared set-up of the benchmark scripts: offline defaults, and the header every result file starts with.

Importing this module sets ``HF_HUB_OFFLINE=1`` and, unless set, ``RANKSTACK_DATA`` (the shared
collections next to this checkout) and ``RANKSTACK_CACHE`` (``.cache/rankstack`` in the checkout).

:func:`header` prints, first, the exact command that is running (with the wrapper that started
it, e.g. ``flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/x.py --args``), then the
hardware (CPU model and the flags that decide speed, from :mod:`rankstack.hardware`) and the
load average; :func:`footer` prints the load average at the end. Redirect the output to
``benchmarks/results/<name>.txt``.
"""

from __future__ import annotations

import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RANKSTACK_DATA", os.path.join(_ROOT, "..", "shared", "data"))
os.environ.setdefault("RANKSTACK_CACHE", os.path.join(_ROOT, ".cache", "rankstack"))

_WRAPPERS = ("flock", "nice", "timeout", "taskset", "time", "env", "ionice")


def _cmdline(pid: str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def command_line() -> str:
    """The command as typed: this process's argv, or the wrapper's (flock, nice, timeout ...) that
    started it, so the result file names the lock too."""
    own = _cmdline("self") or [os.path.basename(sys.executable), *sys.argv]
    pid = str(os.getppid())
    for _ in range(3):  # flock -> (sh -c) -> python
        parent = _cmdline(pid)
        if not parent or os.path.basename(parent[0]) not in _WRAPPERS:
            break
        own = parent
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = f.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            break
    return " ".join(shlex.quote(a) for a in own)


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}, {b:.2f}, {c:.2f}"


def header(*lines: str) -> None:
    """First line: the exact command. Then the given lines (model, data ...), the hardware and the load."""
    from rankstack.hardware import describe

    print(command_line())
    for ln in lines:
        print(ln)
    print(f"hardware: {describe()}")
    print(f"load average at start (1/5/15 min): {load()} (2 shared cores: other people's work may run beside this)",
          flush=True)


def footer() -> None:
    print(f"load average at end (1/5/15 min): {load()}", flush=True)


class Report:
    """A results file: each line printed as it comes, all written to ``path`` at :meth:`save`,
    the command that produced them first."""

    def __init__(self, path: str):
        self.path = path
        self.lines: list[str] = []
        self(command_line())

    def __call__(self, msg: str = "") -> None:
        print(msg, flush=True)
        self.lines.append(msg)

    def save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def hardware_line() -> str:
    """One line: the hardware (:func:`rankstack.hardware.describe`) and the load average now."""
    from rankstack.hardware import describe

    return f"hardware: {describe()}; load average {load()} (other work may share the 2 cores)"


def dl19_top(depth: int, queries: int | None = None):
    """DL19 for a reranking benchmark: ``(dataset, qids, qrels, bm25)`` with the judged queries
    (sorted qid; the first ``queries`` of them), their qrels and the shipped BM25 run cut to ``depth``."""
    from rankstack.data import load_dataset
    from rankstack.types import Run

    ds = load_dataset("dl19")
    qids = sorted(q for q in ds.run if q in ds.qrels)[:queries]
    return ds, qids, {q: ds.qrels[q] for q in qids}, Run({q: ds.run[q].top(depth) for q in qids}, name="bm25")


def timed_rerank(reranker, run, ds, depth: int):
    """``(reranked run, wall seconds)`` of one ``rerank_run`` over ``run`` with ``ds``'s queries and corpus."""
    import time

    t0 = time.perf_counter()
    out = reranker.rerank_run(run, ds.queries, ds.corpus, depth=depth)
    return out, time.perf_counter() - t0
