"""Reranking on Ray on this machine: throughput of 1 vs 2 workers, identity with one process,
and a worker killed mid-run.

Workload: pointwise yes/no with SmolLM2-135M-Instruct (fp32, hf backend) on the first Q DL19
queries at depth D, no cache (every configuration computes every score). Configurations: one
process with 1 and with 2 torch threads; a local Ray cluster (``ray.init(num_cpus=2)``, small
object store, no dashboard) with 1 and 2 actors of 1 CPU / 1 thread each. Ray's rankings are
compared with the one-process run (same docids in the same order; max |score diff|). Then,
with the shared SQLite cache on, one of the 2 actors is killed with SIGKILL once the first batch
is back; the finished run is compared with the one-process run again.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/ray_scale.py --queries 16 --depth 10
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

from _common import Report  # also sets the offline env defaults
from rankstack.hardware import describe  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--block-queries", type=int, default=2, help="queries per actor batch")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "ray_scale.txt"))
    args = ap.parse_args()

    import psutil
    import ray
    import torch

    from rankstack.data import load_dataset
    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.ray_engine import RayEngine
    from rankstack.rerankers.stream import RunJob, RunSource
    from rankstack.types import Run

    say = Report(args.out)

    ds = load_dataset("dl19")
    qids = sorted(ds.run)[: args.queries]
    run = Run({q: ds.run[q].top(args.depth) for q in qids}, name="bm25")
    n_docs = len(qids) * args.depth
    spec = dict(model="smollm2-135m", method="yesno", backend_options={"dtype": "float32", "threads": 1},
                progress=False)
    say(f"model: SmolLM2-135M-Instruct (GGUF Q4_1 dequantized), fp32, hf backend, pointwise yes/no, no cache; data: "
        f"DL19 BM25 top-{args.depth} of the first {len(qids)} queries ({n_docs} docs); Ray {ray.__version__} local "
        f"cluster, num_cpus=2, 1 CPU and 1 torch thread per actor, {args.block_queries} queries per actor batch")
    say(f"hardware: {describe()}; load average at start {os.getloadavg()[0]:.1f} "
        f"(other helpers may be editing code; heavy jobs share one CPU lock)")
    say("")
    say(f"{'configuration':34}  {'seconds':>7}  {'docs/s':>7}  {'vs 1 worker':>11}  {'same order':>10}  {'max |diff|':>10}")

    def compare(a: Run, b: Run) -> tuple[bool, float]:
        same = list(a) == list(b) and all(a[q].docids == b[q].docids for q in a)
        return same, max(abs(x.score - y.score) for q in a for x, y in zip(a[q], b[q]))

    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rr = load_reranker("pointwise", cache=False, **{**spec, "backend_options": {"dtype": "float32",
                                                                                      "threads": threads}})
        rr.rerank_run(Run({qids[0]: run[qids[0]].top(2)}), ds.queries, ds.corpus, depth=2)  # warm-up
        t = time.perf_counter()
        results[f"one process, {threads} thread(s)"] = (rr.rerank_run(run, ds.queries, ds.corpus, depth=args.depth),
                                                       time.perf_counter() - t)
        del rr
    ref = results["one process, 1 thread(s)"][0]
    torch.set_num_threads(1)

    tmp = tempfile.mkdtemp(prefix="rankstack-ray-")
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", _temp_dir=os.path.join(tmp, "ray"))
    rr = load_reranker("pointwise", cache=False, **spec)  # the actors build their own from rr.factory
    for workers in (1, 2):
        engine = RayEngine(workers=workers, cpus_per_worker=1)
        t = time.perf_counter()
        out = rr.rerank_run(run, ds.queries, ds.corpus, depth=args.depth, block_queries=args.block_queries,
                            engine=engine)
        results[f"Ray, {workers} worker(s)"] = (out, time.perf_counter() - t)
    base = results["Ray, 1 worker(s)"][1]
    for name, (out, secs) in results.items():
        same, diff = compare(out, ref)
        say(f"{name:34}  {secs:7.1f}  {n_docs / secs:7.2f}  {base / secs:10.2f}x  {str(same):>10}  {diff:10.1e}")
    say("(Ray times include starting the actors and loading the model in each: the ratio is end to end)")

    # a worker killed with SIGKILL once the first batch is back
    cached = load_reranker("pointwise", cache=os.path.join(tmp, "shared.sqlite"), **spec)
    job = RunJob(RunSource(run), ds.queries, ds.corpus, args.depth, args.block_queries, reranker=cached,
                 progress=False)
    got, killed, at = {}, None, 0
    t = time.perf_counter()
    for ranked, _ in RayEngine(workers=2, cpus_per_worker=1).run(job):
        for r in ranked:
            got[r.qid] = r
        if killed is None:
            pids = [p.pid for p in psutil.process_iter(["cmdline"])
                    if any("RerankActor" in part for part in (p.info["cmdline"] or []))]
            killed, at = pids[0], len(got)
            os.kill(killed, signal.SIGKILL)
    secs = time.perf_counter() - t
    same, diff = compare(Run(got.values()), ref)
    say("")
    say(f"worker killed: SIGKILL to actor pid {killed} after {at} of {len(qids)} queries were back; the run finished "
        f"in {secs:.1f} s with {len(got)} queries; same order as one process {same}, max |score diff| {diff:.1e}")
    ray.shutdown()
    say(f"load average at end {os.getloadavg()[0]:.1f}")
    say.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
