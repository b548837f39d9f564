"""CLI commands of the foundation: ``eval``, ``convert``, ``demo``."""

from __future__ import annotations

import argparse
import logging
import time

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="evaluate TREC runs (ir-measures), side by side with significance marks")
    p.add_argument("runs", nargs="+", help="TREC run files (NAME=PATH to label a column)")
    p.add_argument("--qrels", required=True, help="qrels file or dataset name (dl19, vaswani, cacm)")
    p.add_argument("-m", "--measure", action="append", dest="measures",
                   help='measure (repeatable), e.g. -m nDCG@10 -m "R(rel=2)@100"; default nDCG@10')
    p.add_argument("--rel", type=int, default=None, help="relevance level for binary measures without one (TREC DL: 2)")
    p.add_argument("--baseline", default=None, help="run name to test the others against (default: the first)")
    p.add_argument("--per-query", action="store_true", help="print per-query values too")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("convert", help="convert runs / corpora / topics between formats")
    p.add_argument("kind", choices=["run", "corpus", "topics", "rankllm"],
                   help="run: TREC run <-> RankLLM JSON needs queries+corpus; corpus: jsonl/pyserini/tsv/trec; "
                        "topics: tsv/trec/doc; rankllm: RankLLM JSON -> run + topics + corpus")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--from", dest="src_format", default=None, help="input format (guessed if omitted)")
    p.add_argument("--to", dest="dst_format", default=None, help="output format")
    p.add_argument("--queries", help="(run -> rankllm) topics file or dataset name")
    p.add_argument("--corpus", help="(run -> rankllm) corpus file or dataset name")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("demo", help="the main job: BM25 -> rerank with a small LLM -> nDCG table")
    p.add_argument("--dataset", default="dl19")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--rerankers", default="pointwise,first",
                   help="comma-separated registry names (each also shown fused with BM25, w=0.8 z-score)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--queries-limit", type=int, default=None, help="only the first N judged queries (a quick look)")
    p.add_argument("--no-cache", action="store_true")
    p.set_defaults(func=cmd_demo)


def _named(spec: str) -> tuple[str, str]:
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name, path
    from pathlib import Path

    return Path(spec).name, spec


def cmd_eval(args) -> int:
    from rankstack.data.datasets import SPECS, resolve_qrels
    from rankstack.data.trec import read_run
    from rankstack.eval import evaluate, format_table

    measures = args.measures or ["nDCG@10"]
    qrels = resolve_qrels(args.qrels)
    rel = args.rel if args.rel is not None else (SPECS[args.qrels].rel if args.qrels in SPECS else None)
    per = {}
    for spec in args.runs:
        name, path = _named(spec)
        per[name] = evaluate(read_run(path), qrels, measures, rel=rel, per_query=True)
    print(format_table(per, baseline=args.baseline or (next(iter(per)) if len(per) > 1 else None)))
    if args.per_query:
        for name, ms in per.items():
            for m, vals in ms.items():
                for q, v in vals.items():
                    print(f"{name}\t{m}\t{q}\t{v:.4f}")
    return 0


def cmd_convert(args) -> int:
    from rankstack.data import corpus as C
    from rankstack.data import trec as T
    from rankstack.data.rankllm import read_rankllm, write_rankllm

    if args.kind == "corpus":
        C.write_corpus(C.read_corpus(args.input, args.src_format), args.output, args.dst_format or "jsonl")
    elif args.kind == "topics":
        T.write_topics(T.read_topics(args.input, args.src_format), args.output, args.dst_format or "tsv")
    elif args.kind == "run":
        if (args.dst_format or "trec") == "rankllm":
            from rankstack.data.datasets import resolve_corpus, resolve_queries

            if not (args.queries and args.corpus):
                from rankstack.errors import RankstackError

                raise RankstackError("run -> rankllm needs --queries and --corpus")
            write_rankllm(resolve_queries(args.queries), T.read_run(args.input), resolve_corpus(args.corpus), args.output)
        else:
            T.write_run(T.read_run(args.input), args.output)
    elif args.kind == "rankllm":
        queries, run, store = read_rankllm(args.input)
        T.write_run(run, args.output)
        T.write_topics(queries, args.output + ".topics.tsv")
        C.write_corpus(store, args.output + ".corpus.jsonl")
        print(f"wrote {args.output} (+ .topics.tsv, .corpus.jsonl)")
    return 0


def cmd_demo(args) -> int:
    """BM25 (the dataset's run, or bm25s over its corpus) -> rerankers -> one nDCG table."""
    import platform

    from rankstack.data.datasets import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers import Fusion, load_reranker
    from rankstack.types import Run

    ds = load_dataset(args.dataset)
    queries = ds.judged_queries
    if args.queries_limit:
        queries = dict(list(queries.items())[: args.queries_limit])
    if ds.run is not None:
        first, source = ds.run, "shipped BM25 run"
    else:
        from rankstack.retrieval.bm25 import BM25Retriever

        first = BM25Retriever.from_corpus(ds.corpus).retrieve(queries, k=100)
        source = "bm25s (k1=0.9, b=0.4)"
    first = Run({q: r for q, r in first.top(args.depth).items() if q in queries})
    first.name = "BM25"
    measures = ["nDCG@10"]
    qrels = {q: ds.qrels[q] for q in queries}
    per = {"BM25": evaluate(first, qrels, measures, rel=ds.rel, per_query=True)}
    extra: dict[str, dict[str, str]] = {"BM25": {}}
    backend = None
    for name in [n.strip() for n in args.rerankers.split(",") if n.strip()]:
        rr = load_reranker(name, model=args.model, backend=backend or "hf",
                           backend_options={"threads": args.threads} if args.threads else None,
                           cache=not args.no_cache)
        backend = getattr(rr, "backend", None) or backend
        t0 = time.perf_counter()
        run = rr.rerank_run(first, queries, ds.corpus, depth=args.depth)
        secs = time.perf_counter() - t0
        per[name] = evaluate(run, qrels, measures, rel=ds.rel, per_query=True)
        counts = {k: v for k, v in run.metadata.items() if k.startswith(("parse_", "fallback"))}
        extra[name] = {"s/query": f"{secs / max(1, len(queries)):.2f}", "cache hits": str(run.metadata.get("cache_hits", 0)),
                       "repairs": str(sum(counts.values()))}
        rr.fusion = Fusion(0.8, "zscore")
        fused = rr.rerank_run(first, queries, ds.corpus, depth=args.depth)  # all cached: fusion only
        per[f"{name}+BM25 (0.8)"] = evaluate(fused, qrels, measures, rel=ds.rel, per_query=True)
    print(f"dataset {args.dataset} ({len(queries)} judged queries), first stage: {source}, depth {args.depth}, "
          f"model {args.model}, {platform.processor() or platform.machine()}")
    print(format_table(per, baseline="BM25", extra=extra))
    return 0
