"""CLI: ``rankstack rerank``: rerank a first-stage run and write a TREC run, with a summary."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    p = sub.add_parser("rerank", help="rerank a first-stage run with an LLM (or cross-encoder) reranker")
    p.add_argument("--run", required=True, help="first-stage TREC run, or a dataset name (dl19)")
    p.add_argument("--queries", required=True, help="topics file or dataset name (dl19, vaswani, cacm)")
    p.add_argument("--corpus", required=True, help="corpus file / doc store, or dataset name")
    p.add_argument("--out", required=True, help="output TREC run file")
    p.add_argument("--reranker", default="pointwise", help="registry name (pointwise, first, listwise, ...)")
    p.add_argument("--model", default=None, help="model: alias (smollm2-135m), hub id, local folder, .gguf, "
                                                 "LoRA adapter folder (default: the reranker's own)")
    p.add_argument("--method", default=None, help="pointwise: yesno | score10 | erank | prorank | qlm")
    p.add_argument("--instruction", default=None, help="replace the prompt's instruction text")
    p.add_argument("--depth", type=int, default=100, help="rerank the top DEPTH of each query (default 100)")
    p.add_argument("--fusion-weight", type=float, default=None,
                   help="fuse with the first stage: W * rerank + (1 - W) * first stage (e.g. 0.8)")
    p.add_argument("--fusion-norm", default="zscore", choices=["zscore", "minmax"])
    p.add_argument("--backend", default="hf", help="hf | openai | vllm")
    p.add_argument("--base-url", default=None, help="openai backend: server URL")
    p.add_argument("--device", default=None, help="hf: cpu | cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="hf: float32 | bfloat16 | float16 (default float32 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass")
    p.add_argument("--max-doc-tokens", type=int, default=None, help="cut passages to this many tokens")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the score cache")
    p.add_argument("--cache", default=None, help="SQLite cache file (default $RANKSTACK_CACHE/rerank_cache.sqlite)")
    p.add_argument("--queries-limit", type=int, default=None, help="only the first N queries of the run")
    p.add_argument("--qrels", default=None, help="also print nDCG@10 against these qrels (file or dataset name)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other reranker option (repeatable; JSON values), e.g. --option window=20 "
                        "--option prompt=reasonrank --option passes=2 --option budget=100@1,30@16")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_rerank)


def parse_options(pairs: list[str]) -> dict:
    """``["window=20", "prompt=reasonrank"]`` -> ``{"window": 20, "prompt": "reasonrank"}`` (JSON values when they parse)."""
    import json

    from rankstack.errors import RankstackError

    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise RankstackError(f"option {kv!r} is not KEY=VALUE")
        k, v = kv.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def reranker_from_args(args):
    """Build the reranker the arguments describe (shared with benchmarks)."""
    from rankstack.errors import RankstackError
    from rankstack.rerankers import Fusion, load_reranker
    from rankstack.rerankers.registry import reranker_class

    cls = reranker_class(args.reranker)
    options: dict = {"progress": not getattr(args, "no_progress", False)}
    if args.no_cache:
        options["cache"] = False
    elif args.cache:
        options["cache"] = args.cache
    if args.fusion_weight is not None:
        options["fusion"] = Fusion(args.fusion_weight, args.fusion_norm)
    if args.max_doc_tokens is not None:
        options["max_doc_tokens"] = args.max_doc_tokens
    if args.method is not None:
        options["method"] = args.method
    if args.instruction is not None:
        options["instruction"] = args.instruction
    options.update(parse_options(getattr(args, "option", []) or []))
    if not getattr(cls, "uses_backend", True):
        if args.batch_size:
            options["batch_size"] = args.batch_size
        if args.device:
            options["device"] = args.device
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        try:
            return load_reranker(args.reranker, model=args.model, **options)
        except TypeError as e:  # an option this reranker does not take
            raise RankstackError(f"reranker {args.reranker!r}: {e}") from e
    accepted = {"hf": ("device", "dtype", "threads", "batch_size"), "openai": ("base_url",), "vllm": ("dtype",)}
    bopts: dict = {}
    for key in ("device", "dtype", "threads", "batch_size", "base_url"):
        val = getattr(args, key, None)
        if val is None:
            continue
        if key not in accepted.get(args.backend, ()):
            raise RankstackError(f"--{key.replace('_', '-')} does not apply to --backend {args.backend}")
        bopts[key] = val
    try:
        return load_reranker(args.reranker, model=args.model, backend=args.backend, backend_options=bopts, **options)
    except TypeError as e:  # an option this reranker does not take (e.g. --method for listwise)
        raise RankstackError(f"reranker {args.reranker!r}: {e}") from e


def cmd_rerank(args) -> int:
    import platform

    from rankstack.data.datasets import SPECS, resolve_corpus, resolve_qrels, resolve_queries, resolve_run
    from rankstack.data.trec import write_run
    from rankstack.errors import RankstackError
    from rankstack.types import Run

    if args.depth <= 0:
        raise RankstackError(f"--depth must be > 0, got {args.depth}")
    run = resolve_run(args.run)
    if run is None:
        raise RankstackError(f"{args.run!r} has no first-stage run; give a TREC run file")
    queries = resolve_queries(args.queries)
    corpus = resolve_corpus(args.corpus)
    if args.queries_limit:
        keep = list(run)[: args.queries_limit]
        sub = Run(name=run.name)
        for q in keep:
            sub[q] = run[q]
        run = sub
    reranker = reranker_from_args(args)
    t0 = time.perf_counter()
    out = reranker.rerank_run(run, queries, corpus, depth=args.depth)
    wall = time.perf_counter() - t0
    write_run(out, args.out)
    md = out.metadata
    scored = int(md.get("docs", 0))
    fallbacks = {k: v for k, v in md.items() if k.startswith("parse_")}
    print(f"reranked {args.run} with {reranker!r} on {platform.processor() or platform.machine()} -> {args.out}")
    print(f"queries {md.get('queries', 0)}  docs scored {scored}  wall {wall:.1f}s  docs/s {scored / max(wall, 1e-9):.2f}  "
          f"requests {md.get('requests', 0)}  model calls {md.get('model_requests', 0)}  "
          f"cache hits {md.get('cache_hits', 0)}  parse fallbacks {sum(fallbacks.values())}"
          + (f" {fallbacks}" if fallbacks else ""))
    if args.qrels:
        from rankstack.eval import evaluate, format_table

        qrels = resolve_qrels(args.qrels)
        rel = SPECS[args.qrels].rel if args.qrels in SPECS else None
        first = run.top(args.depth)
        per = {"first stage": evaluate(first, qrels, ["nDCG@10"], rel=rel, per_query=True),
               out.name: evaluate(out, qrels, ["nDCG@10"], rel=rel, per_query=True)}
        print(format_table(per, baseline="first stage"))
    return 0
