"""Threads that adapt: the same SmolLM2 pointwise pairs at 1, 2 and the default thread count,
alone and beside a competing CPU process (a Python busy loop on one core).

    flock /tmp/rankstack-cpu.lock python benchmarks/threads_contention.py --pairs 100 \
        > benchmarks/results/threads_contention.txt

Each measurement is a fresh process (the default, ``rankstack.hardware.default_threads``, is
chosen once, at the start of a process, from the cores free then): it loads the model, scores
the pairs (yes/no, fp32, no cache; DL19 BM25 top-10 of the first queries) and reports docs/s
without the load. The goal: the default within 20% of the best thread count in each condition.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (sets offline defaults)


def worker(threads: str, pairs: int, depth: int) -> dict:
    from rankstack.data.datasets import load_dataset
    from rankstack.hardware import _CHOSEN, default_threads
    from rankstack.rerankers import load_reranker

    n = default_threads() if threads == "default" else int(threads)
    ds = load_dataset("dl19").subset(max(1, pairs // depth))
    rr = load_reranker("pointwise", model="smollm2-135m", method="yesno", cache=False,
                       backend_options={"dtype": "float32", "threads": n, "batch_size": 8})
    t0 = time.perf_counter()
    run = rr.rerank_run(ds.run, ds.queries, ds.corpus, depth=depth)
    secs = time.perf_counter() - t0
    docs = int(run.metadata["docs"])
    return {"threads": n, "why": _CHOSEN.get("why", "given"), "docs": docs, "seconds": round(secs, 2),
            "docs_per_s": round(docs / secs, 3)}


def measure(threads: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", threads, "--pairs", str(args.pairs),
           "--depth", str(args.depth)]
    env = dict(os.environ)
    env.pop("RANKSTACK_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--settings", default="1,2,default")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.pairs, args.depth)))
        return
    from rankstack.hardware import usable_cores

    _common.header(f"model: smollm2-135m pointwise yes/no, fp32, batch 8, no cache; data: DL19 BM25 top-{args.depth} "
                   f"of the first {args.pairs // args.depth} judged queries ({args.pairs} pairs); threads: "
                   f"{args.settings} (default = rankstack.hardware.default_threads() in a fresh process); "
                   f"usable cores {usable_cores()}; competitor: one Python busy loop (nice 0)")
    rows = []
    for cond in ("alone", "beside a busy process"):
        comp = None
        if cond != "alone":
            comp = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(2.0)
        try:
            for t in args.settings.split(","):
                r = measure(t, args)
                rows.append((cond, t, r))
                print(f"  {cond:22s} threads={t:7s} -> {r['threads']} ({r['why']}): {r['docs']} docs in "
                      f"{r['seconds']} s, {r['docs_per_s']} docs/s  [load {_common.load()}]", flush=True)
        finally:
            if comp is not None:
                comp.kill()
                comp.wait()
    print()
    print(f"{'condition':24s} {'1 thread':>9s} {'2 threads':>10s} {'default':>12s} {'default/best':>13s}")
    for cond in ("alone", "beside a busy process"):
        got = {t: r for c, t, r in rows if c == cond}
        best = max(r["docs_per_s"] for r in got.values())
        d = got.get("default")
        ratio = d["docs_per_s"] / best if d else float("nan")
        print(f"{cond:24s} {got['1']['docs_per_s']:9.2f} {got['2']['docs_per_s']:10.2f} "
              f"{d['docs_per_s']:8.2f} ({d['threads']}) {ratio:12.0%}  {'ok' if ratio >= 0.8 else 'MISSED'} (goal >= 80%)")
    _common.footer()


if __name__ == "__main__":
    main()
