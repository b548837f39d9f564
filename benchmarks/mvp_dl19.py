"""MVP (trained by ``train_mvp_dl19.py`` on label-free synthetic queries) on DL19's 43 real queries,
BM25 top-100: nDCG@10 beside BM25, its dense teacher and pointwise yes/no, and latency per query
against FIRST and pointwise yes/no (SmolLM2-135M) on the same candidates, in one run.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/mvp_dl19.py --threads 2 --slow-queries 5

Every reranker runs cold (no cache) where it is timed. FIRST costs about a minute per query on
this CPU at top-100 (9 windows of 20), so FIRST and the timed yes/no run cover the first
``--slow-queries`` queries (sorted qid); MVP's latency is measured on those same queries and on
all 43. The 43-query yes/no nDCG is read from the cache ``qlm_dl19.py`` filled (same pairs,
same fingerprint; no model call), when that cache exists.
"""

from __future__ import annotations

import argparse
import os
import sys

from _common import command_line, dl19_top, hardware_line, timed_rerank  # also sets the offline env defaults


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(os.environ["RANKSTACK_CACHE"], "mvp-distill-dl19"))
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slow-queries", type=int, default=5, help="queries for the FIRST / yes/no latency runs")
    ap.add_argument("--qlm-cache", default=os.path.join(os.environ["RANKSTACK_CACHE"], "bench_qlm_dl19.sqlite"))
    args = ap.parse_args(argv)
    print(command_line(), flush=True)

    import json

    import torch

    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.first import FirstReranker
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.types import Run

    torch.set_num_threads(args.threads)
    ds, qids, qrels, bm25 = dl19_top(args.depth)
    slow = qids[: args.slow_queries]
    bm25_slow = Run({q: bm25[q] for q in slow}, name="bm25")
    qrels_slow = {q: qrels[q] for q in slow}
    info = json.loads(open(os.path.join(args.model, "mvp_config.json")).read())
    print(f"MVP model {args.model}: {json.dumps(info)}")
    be = load_backend("hf", model="smollm2-135m", dtype="float32", batch_size=8)
    print(f"FIRST / yes/no: smollm2-135m ({be.fingerprint()}), batch 8, zero-shot; torch threads {args.threads}; "
          f"data DL19 BM25 top-{args.depth} (shipped run), {len(qids)} queries, no DL19 query or judgement in MVP's "
          f"training")
    print(hardware_line(), flush=True)

    mvp = load_reranker("mvp", model=args.model, cache=False, progress=False)
    dense = load_reranker("dense", model="minilm-l6", cache=False, progress=False)
    per = {"BM25": evaluate(bm25, qrels, ["nDCG@10"], rel=ds.rel, per_query=True)}
    ext: dict = {"BM25": {}}
    for label, rr in (("dense MiniLM-L6 (MVP's teacher)", dense), ("MVP (MiniLM-L6, 4 views)", mvp)):
        run, secs = timed_rerank(rr, bm25, ds, args.depth)
        per[label] = evaluate(run, qrels, ["nDCG@10"], rel=ds.rel, per_query=True)
        ext[label] = {"s/query": f"{secs / len(qids):.2f}"}
        print(f"# {label}: {secs:.1f} s for {len(qids)} queries; {run.metadata}", flush=True)
    if os.path.exists(args.qlm_cache):
        yn = PointwiseReranker(be, method="yesno", cache=args.qlm_cache, progress=False)
        run = yn.rerank_run(bm25, ds.queries, ds.corpus, depth=args.depth)
        if run.metadata["model_requests"] == 0:
            per["yes/no SmolLM2 (scores from qlm_dl19's cache)"] = evaluate(run, qrels, ["nDCG@10"], rel=ds.rel,
                                                                            per_query=True)
        else:
            print(f"# the qlm_dl19 cache lacked {run.metadata['model_requests']} yes/no pairs: 43-query yes/no left out")
    print(f"\nDL19, BM25 top-{args.depth} reranked, {len(qids)} queries (+/-: paired t-test vs BM25, p < 0.05)")
    print(format_table(per, baseline="BM25", extra=ext), flush=True)
    mvp_ndcg = sum(per["MVP (MiniLM-L6, 4 views)"]["nDCG@10"].values()) / len(qids)
    bm25_ndcg = sum(per["BM25"]["nDCG@10"].values()) / len(qids)

    # --- latency on the same candidates: the first --slow-queries queries, every system cold ------
    per = {"BM25": evaluate(bm25_slow, qrels_slow, ["nDCG@10"], rel=ds.rel, per_query=True)}
    ext = {"BM25": {}}
    secs_by = {}
    systems = {"MVP": mvp, "pointwise yes/no": PointwiseReranker(be, method="yesno", cache=False, progress=False),
               "FIRST (w=20, s=10)": FirstReranker(be, cache=False, progress=False)}
    for label, rr in systems.items():
        run, secs = timed_rerank(rr, bm25_slow, ds, args.depth)
        secs_by[label] = secs / len(slow)
        per[label] = evaluate(run, qrels_slow, ["nDCG@10"], rel=ds.rel, per_query=True)
        ext[label] = {"s/query": f"{secs / len(slow):.2f}", "model requests": str(run.metadata["model_requests"])}
        print(f"# {label}: {secs:.1f} s for {len(slow)} queries; {run.metadata}", flush=True)
    for label in systems:
        ext[label]["x faster than FIRST"] = f"{secs_by['FIRST (w=20, s=10)'] / secs_by[label]:.1f}"
    print(f"\nLatency, DL19 first {len(slow)} queries (sorted qid), BM25 top-{args.depth}, each reranker cold, "
          "queries batched in one rerank_run")
    print(format_table(per, baseline="BM25", extra=ext), flush=True)
    speed = secs_by["FIRST (w=20, s=10)"] / secs_by["MVP"]
    print(f"\ngoal: MVP nDCG@10 {mvp_ndcg:.4f} vs BM25 + 0.05 = {bm25_ndcg + 0.05:.4f}: "
          f"{'met' if mvp_ndcg >= bm25_ndcg + 0.05 else 'NOT met'}; MVP {speed:.1f}x faster per query than FIRST: "
          f"{'met' if speed >= 10 else 'NOT met'}")
    print(hardware_line().replace("hardware:", "# at end:"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
