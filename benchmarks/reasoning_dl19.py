"""Reasoning rerankers on DL19 with SmolLM2-135M: groupwise (GroupRank), rubric (Retro*) and
setwise (Rank-R1) beside BM25 at the same depth, and the rubric's test-time scaling curve.

Part ``paradigms``: nDCG@10 of each paradigm on the BM25 top-``depth`` of the first ``queries``
DL19 queries (run order), with parse failures, seconds and generated tokens per query.
Part ``kcurve``: the rubric with K = 1, 2, 4, 8 trajectories on the same candidates (top
``kdepth``); the K values integrate the first K of one set of 8 samples per pair (``pool=8``,
shared through the cache), and the multi-pass budget ``kdepth@1,khead@8`` against ``all@8``.

``--mode direct`` uses rankstack's no-reasoning prompt variants (the assistant turn starts at
the answer: ``<score>``, ``<answer>[``, the JSON object), ``--mode reasoning`` the papers'
prompts with reasoning capped at ``--max-new-tokens``. Run it under the CPU lock:

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/reasoning_dl19.py --part all
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from _common import footer, header  # also sets the offline env defaults


def parse_failures(meta: dict) -> str:
    keys = sorted(k for k in meta if k.startswith("parse_") and meta[k])
    return ", ".join(f"{k[6:]}={meta[k]}" for k in keys) or "0"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["paradigms", "kcurve", "all"], default="all")
    ap.add_argument("--mode", choices=["direct", "reasoning"], default="direct")
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--kdepth", type=int, default=10)
    ap.add_argument("--khead", type=int, default=5)
    ap.add_argument("--kqueries", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=0, help="0: 8 (rubric/setwise) and 80 (groupwise) in direct mode, 256 in reasoning mode")
    ap.add_argument("--max-doc-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--only", default="groupwise,rubric,setwise")
    args = ap.parse_args(argv)
    header()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.groupwise import GroupwiseReranker
    from rankstack.rerankers.rubric import RubricReranker
    from rankstack.rerankers.setwise import SetwiseReranker
    from rankstack.types import Run

    reasoning = args.mode == "reasoning"
    mnt = args.max_new_tokens or (256 if reasoning else 8)
    mnt_group = args.max_new_tokens or (256 if reasoning else 80)
    print(f"model: smollm2-135m (SmolLM2-135M-Instruct), backend hf, dtype {args.dtype}, threads {args.threads}, "
          f"batch {args.batch_size}")
    print(f"mode: {args.mode}; max_new_tokens {mnt} (groupwise {mnt_group}); passages cut to {args.max_doc_tokens} tokens")
    ds = load_dataset("dl19")
    be = load_backend("hf", model="smollm2-135m", dtype=args.dtype, batch_size=args.batch_size)
    common = dict(max_doc_tokens=args.max_doc_tokens, progress=False, reasoning=reasoning, seed=0)

    def subset(n, depth):
        qids = list(ds.run)[:n]
        run = Run({q: ds.run[q].top(depth) for q in qids}, name="bm25")
        return qids, run, {q: ds.qrels[q] for q in qids}

    def row(name, run, qrels, per, extra, meta=None, nq=1):
        per[name] = evaluate(run, qrels, ["nDCG@10"], per_query=True)
        if meta is not None:
            extra[name] = {"parse failures": parse_failures(meta), "s/query": f"{meta['wall_seconds'] / nq:.1f}",
                           "gen tok/query": f"{meta.get('generated_tokens', 0) / nq:.0f}",
                           "model calls": str(meta.get("model_requests", 0))}
            if "trajectories" in meta:
                extra[name]["traj/query"] = f"{meta['trajectories'] / nq:.0f}"
            print(f"  {name}: {dict(per[name]['nDCG@10'])} meta={meta}", flush=True)

    if args.part in ("paradigms", "all"):
        qids, first, qrels = subset(args.queries, args.depth)
        print(f"\n== paradigms: DL19 first {len(qids)} queries ({','.join(qids)}), BM25 top-{args.depth} ==", flush=True)
        per, extra = {}, {}
        row(f"bm25@{args.depth}", first, qrels, per, extra)
        rerankers = {
            "groupwise": lambda: GroupwiseReranker(be, group_size=10, repeats=2, max_new_tokens=mnt_group, cache=False, **common),
            "rubric": lambda: RubricReranker(be, samples=1, max_new_tokens=mnt, cache=False, **common),
            "setwise": lambda: SetwiseReranker(be, k=10, num_child=19, max_new_tokens=mnt, cache=False, **common),
        }
        labels = {"groupwise": "groupwise c=10 R=2", "rubric": "rubric K=1", "setwise": "setwise 20/prompt top-10"}
        for name in args.only.split(","):
            rr = rerankers[name]()
            out = rr.rerank_run(first, ds.queries, ds.corpus, depth=args.depth)
            row(labels[name], out, qrels, per, extra, out.metadata, len(qids))
        print(format_table(per, baseline=f"bm25@{args.depth}", extra=extra), flush=True)

    if args.part in ("kcurve", "all"):
        qids, first, qrels = subset(args.kqueries, args.kdepth)
        print(f"\n== rubric K curve: DL19 first {len(qids)} queries, BM25 top-{args.kdepth}; "
              f"K = first K of 8 samples per pair (temperature 0.6, top_k 40) ==", flush=True)
        per, extra = {}, {}
        row(f"bm25@{args.kdepth}", first, qrels, per, extra)
        with tempfile.TemporaryDirectory() as tmp:
            cache = os.path.join(tmp, "k.sqlite")
            for k in (8, 1, 2, 4):  # K=8 samples the pool; the others read it from the cache
                rr = RubricReranker(be, samples=k, pool=8, max_new_tokens=mnt, cache=cache, **common)
                out = rr.rerank_run(first, ds.queries, ds.corpus, depth=args.kdepth)
                row(f"rubric K={k}", out, qrels, per, extra, out.metadata, len(qids))
            rr = RubricReranker(be, samples=8, pool=8, integration="likelihood", max_new_tokens=mnt, cache=cache, **common)
            out = rr.rerank_run(first, ds.queries, ds.corpus, depth=args.kdepth)
            row("rubric K=8 likelihood", out, qrels, per, extra, out.metadata, len(qids))
            budget = f"{args.kdepth}@1,{args.khead}@8"
            rr = RubricReranker(be, budget=budget, max_new_tokens=mnt, cache=cache, **common)
            out = rr.rerank_run(first, ds.queries, ds.corpus, depth=args.kdepth)
            row(f"rubric budget {budget}", out, qrels, per, extra, out.metadata, len(qids))
            m = out.metadata
            print(f"  budget {budget}: {m['pass1_pairs']} pairs x 1 + {m['pass2_pairs']} pairs x 8 = "
                  f"{m['trajectories']} trajectories vs {len(qids) * args.kdepth * 8} for all@8 "
                  f"(pass-2 samples are the K=8 pool's, read from the cache)", flush=True)
        order = [f"bm25@{args.kdepth}", "rubric K=1", "rubric K=2", "rubric K=4", "rubric K=8",
                 "rubric K=8 likelihood", f"rubric budget {budget}"]
        print(format_table({n: per[n] for n in order}, baseline=f"bm25@{args.kdepth}",
                           extra={n: extra[n] for n in order if n in extra}), flush=True)
        print("s/query of K=1,2,4 and of the budget's second pass are cache reads of the K=8 pool; gen tok/query "
              "counts all samples of each request (8 per pair for the pooled rows); traj/query = trajectories integrated")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
