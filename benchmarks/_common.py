"""Shared set-up of the benchmark scripts: offline defaults and the hardware line they print.

Importing this module sets ``HF_HUB_OFFLINE=1`` and, unless set, ``RANKSTACK_DATA`` (the shared
collections next to this checkout) and ``RANKSTACK_CACHE`` (``.cache/rankstack`` in the checkout).
"""

from __future__ import annotations

import os
import platform

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RANKSTACK_DATA", os.path.join(_ROOT, "..", "shared", "data"))
os.environ.setdefault("RANKSTACK_CACHE", os.path.join(_ROOT, ".cache", "rankstack"))


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (``platform.processor()`` is empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()



def hardware_line() -> str:
    """CPU model, core count, the flags that decide bf16 vs fp32 speed, and the load average now."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"hardware: {cpu_name()} x{os.cpu_count()}, flags {' '.join(shown) or 'none of avx2/avx512'}; "
            f"load average {load} (other helpers may be writing code or waiting on the CPU lock)")


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
