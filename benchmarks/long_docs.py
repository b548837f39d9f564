"""Long documents: chunk + aggregate (MaxP / FirstP / MeanP / SumP) against cutting at a 128-token cap,
on a long-document collection built here from DL19 passages, for dense, QLM and a cross-encoder.
Also the short-passage check: on DL19's own passages, dense with chunking vs without.

    nice .venv/bin/python benchmarks/long_docs.py --threads 2 > benchmarks/results/long_docs.txt

It measures effectiveness only (nDCG@10 and the chunk/truncation counts; no timings), so it needs no
turn on the speed lock (``flock /tmp/rankstack-cpu.lock``) that the speed benchmarks take.

**The collection** (built on the fly from ``$RANKSTACK_DATA/dl19``, nothing written): for each of the
first ``--queries`` judged DL19 queries, each of its BM25 top-``--depth`` passages becomes a document
``D<pid>`` of ``--passages`` passages: the passage itself at a random position (seeded per passage)
among ``--passages - 1`` filler passages drawn from other queries' BM25 top-100 lists (seeded). Its
grade is the grade of its one judged passage (the fillers are taken as non-relevant: they come from
other queries' candidates). The documents are about 4x a DL19 passage (~300 word pieces): a 128-token
cap reads the first third of one, and only sees the passage that carries the grade when it stands first.
"""

from __future__ import annotations

import argparse
import random
import tempfile

from _common import dl19_top, footer, header  # also sets the offline env defaults

CAP = 128


def build_collection(ds, qids, bm25, passages: int, seed: int = 0):
    """(docs store, run over D-docids, qrels over D-docids, mean words per document)."""
    from rankstack.data.corpus import InMemoryDocStore
    from rankstack.types import Doc, Ranking, Run

    pool = sorted({d for q in ds.run for d in ds.run[q].top(100).docids})
    docs, run, qrels = {}, Run(name="bm25-long"), {}
    for q in qids:
        own = set(ds.run[q].top(100).docids)
        fill = [p for p in pool if p not in own]
        ids = []
        for pid in bm25[q].docids:
            rng = random.Random(f"{seed}:{pid}")
            parts = [ds.corpus.get(p).text for p in rng.sample(fill, passages - 1)]
            parts.insert(rng.randrange(passages), ds.corpus.get(pid).text)
            docs.setdefault(f"D{pid}", Doc(f"D{pid}", " ".join(parts)))
            ids.append(f"D{pid}")
        run[q] = Ranking.from_order(q, ids)
        qrels[q] = {f"D{p}": g for p, g in ds.qrels[q].items()}
    words = sum(len(d.text.split()) for d in docs.values()) / len(docs)
    return InMemoryDocStore(docs.values()), run, qrels, words


def rerankers(which: list[str], ce: str, cache: str):
    """name -> (load_reranker args, options that put the model's own cap at CAP tokens)."""
    spec = {"dense": (("dense", "minilm-l6"), {"max_seq_length": CAP + 2}),
            "qlm": (("pointwise", "smollm2-135m"), {"method": "qlm", "max_doc_tokens": CAP}),
            # a pair is cut at CAP + 32 tokens: the query (DL19's are under 29 word pieces) and ~CAP of the passage
            "cross-encoder": (("cross_encoder", ce), {"max_length": CAP + 32})}
    return {w: spec[w] for w in which}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--passages", type=int, default=4, help="passages per built document")
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--rerankers", default="dense,qlm,cross-encoder")
    ap.add_argument("--cross-encoder", default=None, help="a trained cross-encoder folder (default: minilm-l6 "
                                                          "with a seeded random head: its nDCG is a random ranking's)")
    ap.add_argument("--short-depth", type=int, default=100, help="the short-passage check: dense on DL19 top-N (0: skip)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.eval import evaluate
    from rankstack.rerankers import load_reranker

    ce = args.cross_encoder or "minilm-l6"
    header(f"torch {torch.__version__}, threads {args.threads}; cap {CAP} tokens, chunks of {CAP} every "
           f"{args.stride}; cross-encoder {ce}" + ("" if args.cross_encoder else " (random head, seed 0: nDCG is "
                                                                                 "that of a random ranking)"))
    ds, qids, _, bm25 = dl19_top(args.depth, args.queries)
    store, run, qrels, words = build_collection(ds, qids, bm25, args.passages)
    print(f"collection: {len(qids)} DL19 queries x BM25 top-{args.depth}; each document = its passage at a random "
          f"position among {args.passages - 1} fillers from other queries' BM25 top-100 (seeded), graded as its "
          f"passage; {len(store)} documents, {words:.0f} words on average")
    settings = [("cut at 128 (no chunking)", {}), *((f"chunks, {a}", {"chunk_tokens": CAP, "chunk_stride": args.stride,
                                                                       "aggregate": a}) for a in ("max", "first", "mean", "sum"))]
    table: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ((kind, model), opts) in rerankers(args.rerankers.split(","), ce, tmp).items():
            for label, chunk in settings:
                rr = load_reranker(kind, model=model, **({"backend_options": {"dtype": "float32"}} if kind == "pointwise"
                                                         else {}), cache=f"{tmp}/{name}.sqlite", progress=False,
                                   **opts, **chunk)
                out = rr.rerank_run(run, ds.queries, store, depth=args.depth)
                md = out.metadata
                ndcg = evaluate(out, qrels, ["nDCG@10"], rel=ds.rel)["nDCG@10"]
                table.setdefault(label, {})[name] = ndcg
                print(f"  {name:<14} {label:<26} nDCG@10 {ndcg:.4f}  chunked {md.get('docs_chunked', 0)}  chunks "
                      f"{md.get('chunks', 0)}  truncated {md.get('docs_truncated', 0)}+{md.get('chunks_truncated', 0)}"
                      f"  model calls {md['model_requests']}", flush=True)
    names = list(rerankers(args.rerankers.split(","), ce, "").keys())
    print(f"\nnDCG@10 on the long-document collection (BM25 order of the same documents: "
          f"{evaluate(run, qrels, ['nDCG@10'], rel=ds.rel)['nDCG@10']:.4f})")
    print(f"{'setting':<28}" + "".join(f"{n:>15}" for n in names))
    for label, row in table.items():
        print(f"{label:<28}" + "".join(f"{row[n]:>15.4f}" for n in names))
    if args.short_depth:
        short_check(args, ds, evaluate, load_reranker)
    footer()
    return 0


def short_check(args, ds, evaluate, load_reranker):
    """Chunking must not lose where passages fit: dense on DL19 top-N, chunks of the encoder's own budget."""
    _, _, _, bm25 = dl19_top(args.short_depth)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, chunk in (("no chunking", {}), ("chunks of 254, max", {"chunk_tokens": 254})):
            rr = load_reranker("dense", model="minilm-l6", cache=f"{tmp}/c.sqlite", progress=False, **chunk)
            run = rr.rerank_run(bm25, ds.queries, ds.corpus, depth=args.short_depth)
            out[label] = (evaluate(run, ds.qrels, ["nDCG@10"], rel=ds.rel)["nDCG@10"], run.metadata)
    (a, ma), (b, mb) = out.values()
    print(f"\nshort passages (DL19 BM25 top-{args.short_depth}, 43 queries, dense minilm-l6, cap 256 word pieces): "
          f"nDCG@10 no chunking {a:.4f} (truncated {ma.get('docs_truncated', 0)}), chunks of 254 {b:.4f} "
          f"(chunked {mb.get('docs_chunked', 0)} of {mb['docs']}); difference {b - a:+.4f} (must be within 0.002)")


if __name__ == "__main__":
    raise SystemExit(main())
