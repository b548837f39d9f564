"""CLI: ``rankstack index``, ``rankstack retrieve``, ``rankstack fuse``.

    rankstack index cacm indexes/cacm.bm25s                          # bm25s (default backend)
    rankstack index cacm indexes/cacm.lucene --backend lucene         # Anserini index via pyserini
    rankstack index cacm indexes/cacm.html --collection HtmlCollection  # the raw files, as Anserini's regression
    rankstack index cacm indexes/cacm.minilm --backend dense --model minilm-l6 --dense-index hnsw
    rankstack retrieve --index indexes/cacm.bm25s --queries cacm -k 1000 -o runs/cacm.bm25s.trec
    rankstack retrieve --corpus corpus.jsonl --queries topics.tsv -o run.trec   # build in memory, search
    rankstack fuse runs/a.trec runs/b.trec --method rrf -o runs/fused.trec
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from rankstack.data.trec import write_run
from rankstack.errors import RankstackError, UsageError

log = logging.getLogger(__name__)

BACKENDS = ("bm25s", "lucene", "dense")


def _none(s: str | None):
    return None if s is None or s.lower() in ("none", "no", "off", "") else s


def add_parsers(sub) -> None:
    p = sub.add_parser("index", help="build a first-stage index (bm25s, Lucene via pyserini, dense FAISS)")
    p.add_argument("corpus", help="corpus file (jsonl/pyserini/tsv/trec) or dataset name (cacm, vaswani, dl19)")
    p.add_argument("output", help="index folder to write")
    _build_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    p.add_argument("--collection", default=None,
                   help="(lucene) index the corpus files as they are with this Anserini collection class, e.g. "
                        "HtmlCollection for a folder or .tar.gz of HTML pages (a dataset name: its corpus file)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("retrieve", help="search an index (or a corpus indexed on the fly) and write a TREC run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", help="index folder written by `rankstack index`, a Lucene index, or a pyserini "
                                     "prebuilt index name (with --backend lucene)")
    src.add_argument("--corpus", help="corpus file or dataset name: index in memory, then search")
    p.add_argument("--queries", required=True, help="topics file (tsv/trec) or dataset name")
    p.add_argument("-o", "--output", required=True, help="TREC run file to write")
    p.add_argument("-k", type=int, default=1000, help="documents per query (default 1000)")
    p.add_argument("--name", default=None, help="run tag (TREC column 6)")
    p.add_argument("--judged-only", action="store_true", help="(dataset queries) only queries with judgements")
    p.add_argument("--rm3", action="store_true", help="(lucene) BM25 + RM3 pseudo-relevance feedback")
    p.add_argument("--fb-terms", type=int, default=10)
    p.add_argument("--fb-docs", type=int, default=10)
    p.add_argument("--original-query-weight", type=float, default=0.5)
    _build_options(p)
    p.set_defaults(func=cmd_retrieve)

    p = sub.add_parser("fuse", help="fuse TREC runs: reciprocal rank fusion or normalised score interpolation")
    p.add_argument("runs", nargs="+", help="TREC run files or dataset names")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--method", choices=["rrf", "zscore", "minmax"], default="rrf",
                   help="rrf (sum w/(k+rank)) or per-query normalised score interpolation")
    p.add_argument("--weights", default=None, help="comma-separated, one per run (default equal)")
    p.add_argument("--rrf-k", type=int, default=60)
    p.add_argument("--depth", type=int, default=None, help="use each run's top DEPTH only")
    p.add_argument("-k", type=int, default=None, help="keep the top k of the fused run")
    p.add_argument("--name", default=None)
    p.set_defaults(func=cmd_fuse)


def _build_options(p) -> None:
    p.add_argument("--backend", choices=BACKENDS, default=None, help="default bm25s (or the index folder's own)")
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--stemmer", default="porter", help="porter (Lucene's), english (Porter2) or none")
    p.add_argument("--stopwords", default="en", help="en (Lucene's 33 words) or none")
    p.add_argument("--model", default="minilm-l6", help="(dense) sentence-transformers model path, hub id or alias")
    p.add_argument("--dense-index", choices=["flat", "hnsw"], default="flat")
    p.add_argument("--batch-size", type=int, default=64, help="(dense) encoding batch size")
    p.add_argument("--threads", type=int, default=None, help="indexing/search threads (default: the cores free at start)")
    p.add_argument("--device", default=None, help="(dense) torch device for the encoder")
    p.add_argument("--chunk-tokens", type=int, default=None,
                   help="long documents: index passages of this many tokens (bm25s: words; dense: the encoder's "
                        "word pieces); a document scores as its passages aggregated (--aggregate)")
    p.add_argument("--chunk-stride", type=int, default=None, help="tokens between passage starts (default half)")
    p.add_argument("--aggregate", default="max", choices=["max", "first", "mean", "sum"],
                   help="how passage scores make a document's (default max = MaxP)")


def build(args, corpus, path=None):
    """A retriever over ``corpus`` from the CLI options (in memory unless ``path``); with ``--chunk-tokens``
    over the passages of long documents (:mod:`rankstack.retrieval.chunked`)."""
    from rankstack.data.passages import Chunking

    chunking = Chunking.make(getattr(args, "chunk_tokens", None), getattr(args, "chunk_stride", None),
                             getattr(args, "aggregate", "max"))
    if chunking is not None:
        return _build_chunked(args, corpus, chunking, path)
    backend = args.backend or "bm25s"
    stemmer, stopwords = _none(args.stemmer), _none(args.stopwords)
    if backend == "bm25s":
        from rankstack.retrieval.bm25 import BM25Retriever

        r = BM25Retriever.from_corpus(corpus, k1=args.k1, b=args.b, stemmer=stemmer, stopwords=stopwords,
                                      threads=args.threads)
    elif backend == "lucene":
        from rankstack.retrieval.lucene import LuceneRetriever

        if path is None:
            raise RankstackError("internal: a Lucene index needs a folder")
        return LuceneRetriever.from_corpus(corpus, path, stemmer=stemmer, stopwords=stopwords is not None,
                                           threads=args.threads, overwrite=getattr(args, "overwrite", False),
                                           k1=args.k1, b=args.b)
    else:
        from rankstack.retrieval.dense import DenseRetriever

        r = DenseRetriever.from_corpus(corpus, model=args.model, index=args.dense_index, batch_size=args.batch_size,
                                       device=args.device)
    if path is not None:
        r.save(path)
    return r


def _build_chunked(args, corpus, chunking, path):
    from rankstack.retrieval.chunked import ChunkedRetriever

    backend = args.backend or "bm25s"
    if backend == "lucene":
        raise RankstackError("--chunk-tokens works with --backend bm25s or dense (not lucene)")
    tokenizer = encoder = None
    if backend == "dense":
        from rankstack.retrieval.dense import load_encoder

        encoder = load_encoder(args.model, args.device)
        tokenizer = encoder.tokenizer
    inner = argparse.Namespace(**{**vars(args), "chunk_tokens": None})

    def index(docs):
        if encoder is None:
            return build(inner, docs)
        from rankstack.retrieval.dense import DenseRetriever

        return DenseRetriever.from_corpus(docs, model=args.model, index=args.dense_index, batch_size=args.batch_size,
                                          encoder=encoder)

    r = ChunkedRetriever.from_corpus(corpus, chunking, index, tokenizer)
    if path is not None:
        r.save(path)
    return r


def _corpus(arg: str):
    from rankstack.data.datasets import resolve_corpus

    return resolve_corpus(arg)


def cmd_index(args) -> int:
    from pathlib import Path

    from rankstack.retrieval.base import MANIFEST

    from rankstack.data.datasets import check_input

    check_input(args.corpus, "corpus")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise RankstackError(f"{out}: is a file; the index is a folder")
    if args.collection:
        if (args.backend or "lucene") != "lucene":
            raise UsageError(f"--collection indexes with Lucene: it does not go with --backend {args.backend}")
        args.backend = "lucene"
    if (args.backend or "bm25s") != "lucene" and out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise RankstackError(f"index folder {out} exists and is not empty (use --overwrite)")
        if not (out / MANIFEST).exists():
            raise RankstackError(f"{out} is not a rankstack index folder; refusing to overwrite it")
        import shutil

        shutil.rmtree(out)
    t0 = time.perf_counter()
    if args.collection:
        from rankstack.data.datasets import SPECS, load_dataset
        from rankstack.retrieval.lucene import LuceneRetriever

        source = load_dataset(args.corpus).corpus_path if args.corpus in SPECS and not Path(args.corpus).exists() \
            else args.corpus
        r = LuceneRetriever.from_collection(source, out, args.collection, threads=args.threads,
                                            overwrite=args.overwrite, k1=args.k1, b=args.b)
    else:
        r = build(args, _corpus(args.corpus), out)
    secs = time.perf_counter() - t0
    n = len(r)
    print(f"indexed {n} documents with {args.backend or 'bm25s'} into {out} in {secs:.1f}s ({n / secs:.0f} docs/s)")
    return 0


def _open_index(args):
    from pathlib import Path

    from rankstack.retrieval.base import MANIFEST, read_manifest

    p = Path(args.index)
    backend = args.backend
    if (p / MANIFEST).exists():
        backend = read_manifest(p, backend)["backend"]  # --backend given and different -> IndexMismatchError
    elif backend is None:
        backend = "lucene"  # a bare Lucene index folder or a prebuilt name
    if backend in ("bm25s", "dense"):
        from rankstack.retrieval.chunked import wrap_if_chunked
        from rankstack.retrieval.registry import retriever_class

        if getattr(args, "chunk_tokens", None):
            raise RankstackError("--chunk-tokens applies when an index is built (rankstack index --chunk-tokens ...); "
                                 f"{p} is searched as it was built")
        if backend == "bm25s":
            return wrap_if_chunked(retriever_class(backend).load(p, threads=args.threads), read_manifest(p))
        model = args.model if args.model != "minilm-l6" else None
        return wrap_if_chunked(retriever_class(backend).load(p, model=model, device=args.device,
                                                             batch_size=args.batch_size), read_manifest(p))
    from rankstack.retrieval.lucene import LuceneRetriever

    return LuceneRetriever.from_index(args.index, k1=args.k1, b=args.b, rm3=args.rm3, fb_terms=args.fb_terms,
                                      fb_docs=args.fb_docs, original_query_weight=args.original_query_weight,
                                      threads=args.threads)


def cmd_retrieve(args) -> int:
    from pathlib import Path

    from rankstack.data.datasets import SPECS, check_inputs, load_dataset, resolve_queries

    if args.k <= 0:
        raise UsageError(f"-k must be a positive integer, got {args.k}")
    check_inputs(topics=args.queries, corpus=args.corpus)
    if Path(args.output).is_dir():
        raise RankstackError(f"-o {args.output}: is a folder; give the TREC run file to write")
    if args.index and not Path(args.index).exists() and args.backend != "lucene":  # lucene: a prebuilt index name
        raise RankstackError(f"--index {args.index}: no such folder (build one with rankstack index; a pyserini "
                             "prebuilt index name needs --backend lucene)")
    if args.index and Path(args.index).exists() and not Path(args.index).is_dir():
        raise RankstackError(f"--index {args.index}: is a file, not an index folder")
    if args.judged_only:
        if args.queries not in SPECS:
            raise RankstackError("--judged-only needs a dataset name for --queries")
        queries = load_dataset(args.queries).judged_queries
    else:
        queries = resolve_queries(args.queries)
    if args.index:
        r = _open_index(args)
        run = _search(r, queries, args)
    elif (args.backend or "bm25s") == "lucene":
        with tempfile.TemporaryDirectory(prefix="rankstack-lucene-") as tmp:
            r = build(args, _corpus(args.corpus), tmp + "/index")
            if args.rm3:
                from rankstack.retrieval.lucene import LuceneRetriever

                r = LuceneRetriever.load(tmp + "/index", k1=args.k1, b=args.b, rm3=True, fb_terms=args.fb_terms,
                                         fb_docs=args.fb_docs, original_query_weight=args.original_query_weight)
            run = _search(r, queries, args)
    else:
        r = build(args, _corpus(args.corpus))
        run = _search(r, queries, args)
    return 0 if run is not None else 1


def _search(r, queries, args):
    t0 = time.perf_counter()
    run = r.retrieve(queries, k=args.k)
    secs = time.perf_counter() - t0
    if args.name:
        run.name = args.name
    write_run(run, args.output)
    print(f"wrote {args.output}: {len(run)} queries, top {args.k}, {r!r}, {len(queries) / max(secs, 1e-9):.1f} queries/s")
    return run


def cmd_fuse(args) -> int:
    from rankstack.retrieval.fusion import interpolate, rrf

    from rankstack.data.datasets import check_inputs, resolve_run

    if len(args.runs) < 2:
        raise UsageError("fuse needs at least two runs")
    for flag, val in (("--depth", args.depth), ("-k", args.k), ("--rrf-k", args.rrf_k)):
        if val is not None and val <= 0:
            raise UsageError(f"{flag} must be a positive integer, got {val}")
    check_inputs(run=list(args.runs))
    runs = [resolve_run(p) for p in args.runs]
    weights = None
    if args.weights:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise UsageError(f"--weights must be comma-separated numbers, got {args.weights!r}") from None
        if len(weights) != len(runs):
            raise UsageError(f"--weights has {len(weights)} values for {len(runs)} runs")
    if args.method == "rrf":
        fused = rrf(runs, k=args.rrf_k, weights=weights, depth=args.depth, name=args.name or "rrf")
    else:
        fused = interpolate(runs, weights or [1.0 / len(runs)] * len(runs), norm=args.method, depth=args.depth,
                            name=args.name or f"fusion-{args.method}")
    if args.k is not None:
        fused = fused.top(args.k)
    write_run(fused, args.output)
    print(f"wrote {args.output}: {len(fused)} queries fused from {len(runs)} runs ({args.method})")
    return 0
