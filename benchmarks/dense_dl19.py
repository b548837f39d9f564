"""The dense (MiniLM bi-encoder) reranker on DL19's BM25 top-100: nDCG@10, docs/s, fusion with BM25.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/dense_dl19.py --threads 2

A cold run (no score cache: every passage and query encoded) gives the speed; fusion weights
are fixed in advance (0.8 dense + 0.2 BM25 z-scores, the project's default; and RRF k=60).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from _common import footer, header  # also sets the offline env defaults


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=100)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers import load_reranker
    from rankstack.retrieval.fusion import interpolate, rrf

    header(f"torch {torch.__version__}, threads {args.threads}")
    ds = load_dataset("dl19")
    bm25 = ds.run.top(args.depth)
    with tempfile.TemporaryDirectory() as tmp:
        rr = load_reranker("dense", model=args.model, cache=os.path.join(tmp, "c.sqlite"), progress=False)
        t = time.perf_counter()
        cold = rr.rerank_run(bm25, ds.queries, ds.corpus, depth=args.depth)
        secs = time.perf_counter() - t
        t = time.perf_counter()
        warm = rr.rerank_run(bm25, ds.queries, ds.corpus, depth=args.depth)
        warm_secs = time.perf_counter() - t
    assert warm == cold and warm.metadata["model_requests"] == 0
    docs = cold.metadata["docs"]
    print(f"model {args.model}: {docs} (query, passage) pairs, {cold.metadata['model_requests']} texts encoded "
          f"({len(set(d for r in bm25.values() for d in r.docids))} distinct passages + {len(bm25)} queries): "
          f"cold {secs:.1f} s = {docs / secs:.0f} docs/s; warm (from the cache) {warm_secs:.2f} s")
    per = {"BM25": evaluate(bm25, ds.qrels, ["nDCG@10", "R(rel=2)@100"], rel=ds.rel, per_query=True),
           "dense": evaluate(cold, ds.qrels, ["nDCG@10", "R(rel=2)@100"], rel=ds.rel, per_query=True),
           "dense + BM25 (0.8/0.2 z)": evaluate(interpolate([cold, bm25], [0.8, 0.2]), ds.qrels,
                                                ["nDCG@10", "R(rel=2)@100"], rel=ds.rel, per_query=True),
           "dense + BM25 (RRF k=60)": evaluate(rrf([cold, bm25]), ds.qrels, ["nDCG@10", "R(rel=2)@100"],
                                               rel=ds.rel, per_query=True)}
    print(f"DL19, 43 queries, BM25 top-{args.depth}")
    print(format_table(per, baseline="BM25"))
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
