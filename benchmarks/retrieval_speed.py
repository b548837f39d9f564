"""Indexing (docs/s) and searching (queries/s) speed: bm25s vs pyserini (Lucene) vs dense, one corpus, one run.

Search speed is measured on the dataset's topics repeated ``--repeat`` times (distinct qids),
top ``-k``, after one warm-up query. Ratios are against the first backend (bm25s).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/retrieval_speed.py --dataset cacm
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from _common import footer, header  # also sets the offline env defaults
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cacm")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (dense) and search threads")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--backends", default="bm25s,pyserini,dense", help="subset of bm25s,pyserini,dense")
    ap.add_argument("-k", type=int, default=1000)
    args = ap.parse_args()
    header()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.retrieval.bm25 import BM25Retriever
    from rankstack.retrieval.dense import DenseRetriever, load_encoder
    from rankstack.retrieval.lucene import LuceneRetriever, setup_jvm
    from rankstack.types import Query, Ranking, Run

    ds = load_dataset(args.dataset)
    docs = list(ds.corpus)
    queries = [Query(f"{q.qid}-{i}", q.text) for i in range(args.repeat) for q in ds.queries.values()]
    warm = [Query("warm", "computer")]
    setup_jvm()
    import pyserini.search.lucene  # noqa: F401  (JVM start and imports are not indexing time)

    want = args.backends.split(",")
    encoder = load_encoder(args.model) if "dense" in want else None
    builders = {
        "bm25s": lambda d: BM25Retriever.from_corpus(docs, show_progress=False, threads=args.threads),
        "pyserini": lambda d: LuceneRetriever.from_corpus(docs, Path(d) / "lucene", threads=args.threads),
        "dense flat": lambda d: DenseRetriever.from_corpus(docs, model=args.model, encoder=encoder, show_progress=False),
        "dense hnsw": lambda d: DenseRetriever.from_corpus(docs, model=args.model, encoder=encoder, index="hnsw",
                                                           show_progress=False),
    }
    builders = {n: b for n, b in builders.items() if n.split()[0] in want}
    per, extra, speed = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in builders.items():
            t = time.perf_counter()
            r = build(tmp)
            t_index = time.perf_counter() - t
            r.retrieve(warm, k=10)
            t = time.perf_counter()
            run = r.retrieve(queries, k=args.k)
            t_search = time.perf_counter() - t
            speed[name] = (len(docs) / t_index, len(queries) / t_search)
            first = Run(Ranking(q[: -len("-0")], rk.docs) for q, rk in run.items() if q.endswith("-0"))
            per[name] = evaluate(first, ds.qrels, ["nDCG@10"], per_query=True)
            print(f"{name}: indexed in {t_index:.1f}s, searched {len(queries)} queries in {t_search:.1f}s", flush=True)
    base = speed[next(iter(speed))]
    first_name = next(iter(speed))
    for name, (dps, qps) in speed.items():
        extra[name] = {"index docs/s": f"{dps:,.0f}", "search q/s": f"{qps:,.1f}",
                       f"index x {first_name}": f"{dps / base[0]:.2f}",
                       f"search x {first_name}": f"{qps / base[1]:.2f}"}
    print(f"data: {args.dataset} ({len(docs)} docs, {len(queries)} queries = {len(ds.queries)} topics x {args.repeat}), "
          f"top {args.k}; model {args.model} fp32 (dense), encode batch 64; threads {args.threads} (bm25s n_threads, "
          f"Lucene indexing/search threads, torch)")
    print(format_table(per, extra=extra))
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
