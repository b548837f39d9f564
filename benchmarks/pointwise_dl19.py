"""DL19 effectiveness of the pointwise rerankers with SmolLM2-135M-Instruct (zero-shot).

BM25 top-``max(depths)`` of each query is scored once per method (the SQLite cache then serves
the smaller depths: same pairs), each method alone and fused with BM25 (0.8 * rerank + 0.2 *
BM25, z-scores), beside BM25, in one table per depth.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/pointwise_dl19.py --depths 10,20 --threads 2
    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/pointwise_dl19.py --tune --queries 5

``--tune`` compares prompt wordings for yes/no on a few queries (depth 10) instead.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


VARIANTS = {  # yes/no wordings tried with --tune
    "judge system + 'answer the query?' (default)": {},
    "SmolLM default system": {"system": ""},
    "judge system + 'relevant?'": {"instruction": "Is the passage relevant to the query? Answer Yes or No."},
    "judge system + 'contains the answer?'": {
        "instruction": "Does the passage contain the answer to the query? Answer Yes or No."},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", default="10,20,100")
    ap.add_argument("--queries", type=int, default=None, help="first N judged queries (default: all 43)")
    ap.add_argument("--methods", default="yesno,score10,prorank")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tune", action="store_true")
    args = ap.parse_args(argv)
    header()

    import torch

    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers import Fusion
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.types import Run

    torch.set_num_threads(args.threads)
    ds = load_dataset("dl19")
    qids = [q for q in ds.run if q in ds.qrels][: args.queries]
    ds.qrels = {q: ds.qrels[q] for q in qids}  # evaluate the queries reranked
    bm25 = Run(name="bm25")
    for q in qids:
        bm25[q] = ds.run[q]
    be = load_backend("hf", model="smollm2-135m", dtype="float32", batch_size=args.batch_size)
    print(f"model smollm2-135m (SmolLM2-135M-Instruct, GGUF Q4_1 dequantized), dtype float32, batch "
          f"{args.batch_size}, prefix reuse on, threads {args.threads}; data DL19 ({len(qids)} queries), BM25 "
          f"(shipped run)")
    measures = ["nDCG@10"]

    if args.tune:
        depth = 10
        per = {"BM25": evaluate(bm25.top(depth), ds.qrels, measures, rel=ds.rel, per_query=True)}
        extra = {}
        for name, opts in VARIANTS.items():
            rr = PointwiseReranker(be, method="yesno", progress=False, **opts)
            t0 = time.perf_counter()
            run = rr.rerank_run(bm25, ds.queries, ds.corpus, depth=depth)
            per[name] = evaluate(run, ds.qrels, measures, rel=ds.rel, per_query=True)
            extra[name] = {"s": f"{time.perf_counter() - t0:.0f}"}
        print(f"prompt tuning, yes/no, depth {depth}, first {len(qids)} queries")
        print(format_table(per, baseline="BM25", extra=extra))
        return 0

    depths = sorted(int(d) for d in args.depths.split(","))
    methods = args.methods.split(",")
    rrs = {m: PointwiseReranker(be, method=m, progress=True) for m in methods}
    labels = {"yesno": "yes/no", "score10": "0-10 expected value", "prorank": "ProRank 1-0"}
    for depth in depths:  # shallow first: each deeper list re-uses the cached scores of the shallower one
        first = bm25.top(depth)
        per = {"BM25": evaluate(first, ds.qrels, measures, rel=ds.rel, per_query=True)}
        ext: dict = {"BM25": {}}
        for m, rr in rrs.items():
            label = labels.get(m, m)
            rr.fusion = None
            t0 = time.perf_counter()
            run = rr.rerank_run(first, ds.queries, ds.corpus, depth=depth)
            secs = time.perf_counter() - t0
            md = run.metadata
            per[label] = evaluate(run, ds.qrels, measures, rel=ds.rel, per_query=True)
            ext[label] = {"pairs": str(md["docs"]), "model calls": str(md["model_requests"]),
                          "cache hits": str(md["cache_hits"]),
                          "model calls/s": f"{md['model_requests'] / secs:.2f}" if md["model_requests"] else "-"}
            rr.fusion = Fusion(0.8, "zscore")
            per[f"{label} + BM25 (0.8)"] = evaluate(rr.rerank_run(first, ds.queries, ds.corpus, depth=depth),
                                                     ds.qrels, measures, rel=ds.rel, per_query=True)
            rr.fusion = None
        print(f"\nDL19, BM25 top-{depth} reranked ({len(qids)} queries)", flush=True)
        print(format_table(per, baseline="BM25", extra=ext), flush=True)
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
