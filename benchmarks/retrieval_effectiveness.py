"""First-stage effectiveness on CACM and Vaswani: BM25 (bm25s and Lucene/pyserini), Lucene BM25+RM3,
dense all-MiniLM-L6-v2 (FAISS flat IP), and BM25+dense fusion (RRF k=60; z-score interpolation 0.5/0.5).

Each run is written as a TREC file and the table is printed by ``rankstack eval`` itself. On CACM
the Lucene run is the reproduction of Anserini's regression (BM25 MAP 0.3123, P@30 0.1942).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/retrieval_effectiveness.py [--datasets cacm,vaswani]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from _common import footer, header  # also sets the offline env defaults
from pathlib import Path

ANSERINI = {"cacm": {"BM25": (0.3123, 0.1942), "BM25+RM3": (0.3643, 0.2237)}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="cacm,vaswani")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", default="bm25s,lucene,dense", help="subset of bm25s,lucene,dense")
    ap.add_argument("--keep", default=None, help="folder to keep the runs in (default: a temp folder)")
    args = ap.parse_args()
    header()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.cli import main as cli
    from rankstack.data import load_dataset
    from rankstack.data.trec import write_run
    from rankstack.retrieval.bm25 import BM25Retriever
    from rankstack.retrieval.dense import DenseRetriever
    from rankstack.retrieval.fusion import interpolate, rrf
    from rankstack.retrieval.lucene import LuceneRetriever

    print(f"backends: {args.backends}; fusion rows fuse the first BM25 run (bm25s, else Lucene) with dense")
    print(f"first stage: bm25s 0.9/0.4 porter+stopwords (method=lucene); pyserini Lucene BM25 0.9/0.4 (+RM3 10/10/0.5); "
          f"dense {args.model} fp32 FAISS IndexFlatIP, top 1000")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in args.datasets.split(","):
            ds = load_dataset(name)
            runs, secs = {}, {}
            want = args.backends.split(",")
            if "bm25s" in want:
                t = time.perf_counter()
                runs["BM25 bm25s"] = BM25Retriever.from_corpus(ds.corpus, show_progress=False).retrieve(ds.queries, 1000)
                secs["BM25 bm25s"] = time.perf_counter() - t
            if "lucene" in want:
                t = time.perf_counter()
                lucene = LuceneRetriever.from_corpus(ds.corpus, out / f"{name}.lucene", overwrite=True)
                runs["BM25 Lucene"] = lucene.retrieve(ds.queries, 1000)
                secs["BM25 Lucene"] = time.perf_counter() - t
                runs["BM25+RM3 Lucene"] = LuceneRetriever.load(out / f"{name}.lucene", rm3=True).retrieve(ds.queries, 1000)
            if "dense" in want:
                t = time.perf_counter()
                runs["dense MiniLM"] = DenseRetriever.from_corpus(ds.corpus, model=args.model, batch_size=64,
                                                                  show_progress=False).retrieve(ds.queries, 1000)
                secs["dense MiniLM"] = time.perf_counter() - t
                bm25 = runs.get("BM25 bm25s") or runs.get("BM25 Lucene")
                if bm25 is not None:
                    runs["RRF bm25+dense"] = rrf([bm25, runs["dense MiniLM"]], k=60)
                    runs["zscore 0.5 bm25+dense"] = interpolate([bm25, runs["dense MiniLM"]], [0.5, 0.5],
                                                                norm="zscore", depth=1000)
            paths = []
            for label, run in runs.items():
                p = out / f"{name}.{label.replace(' ', '_').replace('+', '-')}.trec"
                write_run(run, p)
                paths.append(f"{label}={p}")
            print(f"\n== {name}: {len(ds.queries)} queries ({len(ds.judged_queries)} judged), "
                  f"{len(ds.corpus)} docs; build+search seconds: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()))
            sys.stdout.flush()
            cli(["eval", *paths, "--qrels", name, "-m", "nDCG@10", "-m", "AP@1000", "-m", "R@100", "-m", "P@30"])
            for label, (m, p30) in ANSERINI.get(name, {}).items():
                print(f"Anserini regression {label}: MAP {m:.4f}  P@30 {p30:.4f}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
