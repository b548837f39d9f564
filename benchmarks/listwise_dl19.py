"""FIRST vs generative listwise (RankZephyr prompt) on DL19 BM25 top-100, window 20, step 10.

Prints (1) nDCG@10 of BM25, FIRST and generative listwise on the same queries, with seconds
per query, the FIRST/generative latency ratio and the generative parse-repair counts, both run
cold (no cache) on the same model, backend, batch size and windows; (2) FIRST on a larger
query set. Model outputs are cached per run only in a temporary file.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/listwise_dl19.py --gen-queries 4 --first-queries 10
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import footer, header  # also sets the offline env defaults


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--max-passage-tokens", type=int, default=100)
    ap.add_argument("--gen-queries", type=int, default=4, help="first N DL19 queries (sorted qid) for both methods")
    ap.add_argument("--first-queries", type=int, default=43, help="first N queries for FIRST alone")
    ap.add_argument("--prompt", default="rankzephyr")
    args = ap.parse_args()
    header()

    import torch

    from rankstack.data import load_dataset
    from rankstack.eval import evaluate
    from rankstack.eval.table import format_table
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.cache import ScoreCache
    from rankstack.rerankers.first import FirstReranker
    from rankstack.rerankers.listwise import ListwiseReranker
    from rankstack.types import Run

    torch.set_num_threads(args.threads)
    ds = load_dataset("dl19")
    qids = sorted(ds.run)
    gen_q = qids[: args.gen_queries]
    first_q = qids[: max(args.first_queries, args.gen_queries)]
    sub = lambda run, keep: Run({q: run[q] for q in keep}, name=run.name)  # noqa: E731
    be = load_backend("hf", model=args.model, dtype=args.dtype, batch_size=args.batch_size, threads=args.threads)
    opts = dict(window=args.window, step=args.step, top_k=args.depth, max_passage_tokens=args.max_passage_tokens,
                progress=False)
    tmp = tempfile.mkdtemp(prefix="rankstack-bench-")
    cache = ScoreCache(os.path.join(tmp, "cache.sqlite"))
    print(f"# model {args.model} ({be.fingerprint()}), backend hf, dtype {args.dtype}, threads {args.threads}, "
          f"batch {args.batch_size}; data DL19 BM25 top-{args.depth}; window {args.window}, step {args.step}, "
          f"passages cut to {args.max_passage_tokens} tokens; prompt {args.prompt}")

    first = FirstReranker(be, cache=cache, **opts)
    gen = ListwiseReranker(be, prompt=args.prompt, cache=False, **opts)
    bm25 = ds.run.top(args.depth)

    # --- 1. same queries, cold: FIRST then generative -------------------------------------------
    t = time.perf_counter()
    run_first_g = first.rerank_run(sub(bm25, gen_q), ds.queries, ds.corpus, depth=args.depth)
    t_first = time.perf_counter() - t
    print(f"# FIRST on {len(gen_q)} queries: {t_first:.1f} s, {run_first_g.metadata}", flush=True)
    t = time.perf_counter()
    run_gen = gen.rerank_run(sub(bm25, gen_q), ds.queries, ds.corpus, depth=args.depth)
    t_gen = time.perf_counter() - t
    md = run_gen.metadata
    print(f"# generative on {len(gen_q)} queries: {t_gen:.1f} s, {md}", flush=True)

    m = ["nDCG@10"]
    qr = {q: ds.qrels[q] for q in gen_q if q in ds.qrels}
    per = {"BM25": evaluate(sub(bm25, gen_q), qr, m, rel=ds.rel, per_query=True),
           "FIRST": evaluate(run_first_g, qr, m, rel=ds.rel, per_query=True),
           f"listwise ({args.prompt})": evaluate(run_gen, qr, m, rel=ds.rel, per_query=True)}
    n_out = md.get("outputs_parsed", 0)
    parse = (f"{md.get('outputs_repaired', 0)}/{n_out} repaired: no_ids {md.get('parse_no_ids', 0)}, "
             f"dup {md.get('parse_duplicates', 0)}, out_of_range {md.get('parse_out_of_range', 0)}, "
             f"missing {md.get('parse_missing', 0)}")
    extra = {"BM25": {"s/query": "-", "windows": "-"},
             "FIRST": {"s/query": f"{t_first / len(gen_q):.1f}", "windows": str(run_first_g.metadata.get('windows'))},
             f"listwise ({args.prompt})": {"s/query": f"{t_gen / len(gen_q):.1f}", "windows": str(md.get("windows")),
                                           "parse repairs": parse,
                                           "gen tokens": str(md.get("generated_tokens", 0))}}
    print(f"\n## DL19, first {len(gen_q)} queries (sorted qid), both rerankers cold on the same model")
    print(format_table(per, baseline="BM25", extra=extra))
    print(f"FIRST / generative latency: {t_first / t_gen:.3f} ({100 * (1 - t_first / t_gen):.0f}% lower; "
          f"generative is {t_gen / t_first:.2f}x slower); FIRST paper: 21-50% lower on GPUs", flush=True)

    # --- 2. FIRST on more queries (the first ones come from the cache) ----------------------------------
    if len(first_q) > len(gen_q):
        t = time.perf_counter()
        run_first = first.rerank_run(sub(bm25, first_q), ds.queries, ds.corpus, depth=args.depth)
        dt = time.perf_counter() - t
        new = len(first_q) - len(gen_q)
        qr2 = {q: ds.qrels[q] for q in first_q if q in ds.qrels}
        per2 = {"BM25": evaluate(sub(bm25, first_q), qr2, m, rel=ds.rel, per_query=True),
                "FIRST": evaluate(run_first, qr2, m, rel=ds.rel, per_query=True)}
        print(f"\n## DL19, first {len(first_q)} queries (sorted qid): FIRST")
        print(format_table(per2, baseline="BM25",
                           extra={"FIRST": {"s/query (uncached)": f"{dt / max(1, new):.1f}",
                                            "model requests": str(run_first.metadata.get('model_requests'))}}))
    footer()


if __name__ == "__main__":
    main()
