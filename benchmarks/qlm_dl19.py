"""Query likelihood (QLM) with SmolLM2-135M-Instruct, zero-shot, on DL19 BM25 top-``depth``:
nDCG@10 and docs/s beside yes/no, BM25 and the dense MiniLM reranker, all on the same pairs in
one run; then QLM's shared-prefix reuse measured on and off on the first few queries.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/qlm_dl19.py --depth 100 --threads 2

Scores go to a fresh SQLite cache (``--cache``, emptied first), so every number is computed in
this run and a later benchmark (``mvp_dl19.py``) can read the yes/no scores of the same pairs.
"""

from __future__ import annotations

import argparse
import os
import sys

from _common import command_line, dl19_top, hardware_line, timed_rerank  # also sets the offline env defaults


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--queries", type=int, default=None, help="first N judged queries (default: all 43)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--reuse-queries", type=int, default=3, help="queries for the prefix reuse on/off measurement")
    ap.add_argument("--cache", default=os.path.join(os.environ["RANKSTACK_CACHE"], "bench_qlm_dl19.sqlite"))
    args = ap.parse_args(argv)
    print(command_line(), flush=True)

    import numpy as np
    import torch

    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.backends.hf import _common_prefix_len
    from rankstack.rerankers.dense import DenseReranker
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.types import Doc, Run

    torch.set_num_threads(args.threads)
    if os.path.exists(args.cache):
        os.remove(args.cache)
    ds, qids, qrels, bm25 = dl19_top(args.depth, args.queries)
    pairs = sum(len(r) for r in bm25.values())
    be = load_backend("hf", model="smollm2-135m", dtype="float32", batch_size=args.batch_size)
    print(f"model smollm2-135m ({be.fingerprint()}), batch {args.batch_size}, prefix reuse on, torch threads "
          f"{args.threads}; dense: all-MiniLM-L6-v2 (minilm-l6); data DL19 BM25 top-{args.depth}, {len(qids)} queries "
          f"({pairs} pairs; shipped run)")
    print(hardware_line(), flush=True)

    per = {"BM25": evaluate(bm25, qrels, ["nDCG@10"], rel=ds.rel, per_query=True)}
    ext: dict = {"BM25": {}}
    systems = {"dense MiniLM-L6": DenseReranker("minilm-l6", cache=args.cache, progress=False),
               "yes/no (SmolLM2)": PointwiseReranker(be, method="yesno", cache=args.cache),
               "QLM (SmolLM2)": PointwiseReranker(be, method="qlm", cache=args.cache)}
    for label, rr in systems.items():
        run, secs = timed_rerank(rr, bm25, ds, args.depth)
        md = run.metadata
        per[label] = evaluate(run, qrels, ["nDCG@10"], rel=ds.rel, per_query=True)
        ext[label] = {"pairs": str(md["docs"]), "model requests": str(md["model_requests"]),
                      "cache hits": str(md["cache_hits"]), "seconds": f"{secs:.1f}", "docs/s": f"{md['docs'] / secs:.2f}"}
        print(f"# {label}: {secs:.1f} s, {md}", flush=True)
    print(f"\nDL19, BM25 top-{args.depth} reranked, {len(qids)} queries (zero-shot; +/-: paired t-test vs BM25, p < 0.05)")
    print(format_table(per, baseline="BM25", extra=ext), flush=True)

    # --- QLM: which prefix the hf backend shares, and what it buys -----------------------------------
    qlm = systems["QLM (SmolLM2)"]
    yesno = systems["yes/no (SmolLM2)"]
    q0 = ds.queries[qids[0]]
    enc = [be.encode(qlm.prompt(q0, Doc("a", "alpha beta"))), be.encode(qlm.prompt(q0, Doc("b", "gamma delta")))]
    enc_yn = [be.encode(yesno.prompt(q0, Doc("a", "alpha beta"))), be.encode(yesno.prompt(q0, Doc("b", "gamma delta")))]
    docs = {q: [qlm.prepare_doc(d) for d in ds.corpus.get_many(bm25[q].docids)] for q in qids}
    lens = [len(be.encode(qlm.prompt(ds.queries[q], d))) + be.count_tokens(ds.queries[q].text)
            for q in qids[: args.reuse_queries] for d in docs[q]]
    print(f"\nQLM shared prefix: {_common_prefix_len(enc)} tokens (SmolLM2's default system prompt + '<|im_start|>user\\n"
          f"Passage:'), the passage follows, then the instruction and the query; yes/no shares "
          f"{_common_prefix_len(enc_yn)} tokens for the query's family (system + query, first query). QLM sequences "
          f"average {np.mean(lens):.1f} tokens (first {args.reuse_queries} queries, prompt + query).")
    sub = Run({q: bm25[q] for q in qids[: args.reuse_queries]})
    rows = {}
    for reuse in (True, False):
        be.prefix_reuse = reuse
        rows[reuse] = timed_rerank(PointwiseReranker(be, method="qlm", cache=False, progress=False), sub, ds,
                                   args.depth)
    be.prefix_reuse = True
    a, b = rows[True][0], rows[False][0]
    diff = max(abs(a[q].scores()[d] - b[q].scores()[d]) for q in a for d in a[q].scores())
    n = sum(len(r) for r in sub.values())
    print(f"QLM prefix reuse on the first {len(sub)} queries ({n} pairs, uncached): on {rows[True][1]:.1f} s "
          f"({n / rows[True][1]:.2f} docs/s), off {rows[False][1]:.1f} s ({n / rows[False][1]:.2f} docs/s): "
          f"{rows[False][1] / rows[True][1]:.2f}x; max |score diff| {diff:.1e}")
    print(hardware_line().replace("hardware:", "# at end:"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
