"""Train MVP (MiniLM-L6 backbone, 4 views) on label-free synthetic DL19-corpus queries, distilled
from the dense MiniLM teacher's ranks (the lead's /work/data/distill-dl19, see its README): no
DL19 query and no DL19 judgement is read. The model goes to ``--output`` for ``mvp_dl19.py``.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/train_mvp_dl19.py --threads 2 --max-steps 2000 --time-budget 1500
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _common import hardware_line  # also sets the offline env defaults


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/data/distill-dl19")
    ap.add_argument("--queries", default="queries.tsv", help="file in --data: queries.tsv (consistency-filtered) "
                    "or generated.tsv (all)")
    ap.add_argument("--output", default=os.path.join(os.environ["RANKSTACK_CACHE"], "mvp-distill-dl19"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--list-size", type=int, default=16)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--time-budget", type=float, default=1500)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--anchor-lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from rankstack.data import load_dataset, read_run, read_topics
    from rankstack.training.mvp import mvp_lists, train_mvp

    torch.set_num_threads(args.threads)
    queries = read_topics(os.path.join(args.data, args.queries))
    run = read_run(os.path.join(args.data, "candidates.trec"))
    teacher = os.path.join(args.data, "teacher.trec")
    corpus = load_dataset("dl19").corpus  # passages only
    dl19_queries = load_dataset("dl19").queries
    leak = [q for q in queries if q in dl19_queries or queries[q].text.strip().lower() in
            {x.text.strip().lower() for x in dl19_queries.values()}]
    if leak:
        raise SystemExit(f"training queries overlap DL19's: {leak[:5]}")
    qids = [q for q in run if q in queries]
    lists = mvp_lists(run, teacher, queries, corpus, depth=100, list_size=args.list_size, top=args.top,
                      samples=args.samples, seed=args.seed, qids=qids)
    print(f"data: {args.data}/{args.queries} ({len(qids)} synthetic queries over the DL19 corpus, none of DL19's "
          f"43 queries; checked), candidates.trec (bm25s top-{max(len(r) for r in run.values())}), teacher "
          f"teacher.trec (dense all-MiniLM-L6-v2 scores); {len(lists)} lists of {args.list_size} (teacher top "
          f"{args.top} + {args.list_size - args.top} random), {args.samples} per query")
    print(f"model: MVP on minilm-l6 (all-MiniLM-L6-v2, 6-layer BERT, 22.7M) + 4 view tokens + anchor layer; "
          f"max_length {args.max_length}; loss listwise KL (g = 1/rank, T 0.8) + 0.1 x orthogonality; lr "
          f"{args.lr} (encoder) / {args.anchor_lr} (anchor), max {args.max_steps} steps, time budget "
          f"{args.time_budget:.0f} s; torch threads {args.threads}")
    print(hardware_line(), flush=True)
    t0 = time.perf_counter()
    res = train_mvp(lists, model="minilm-l6", output_dir=args.output, max_length=args.max_length,
                    max_steps=args.max_steps, learning_rate=args.lr, anchor_lr=args.anchor_lr,
                    time_budget=args.time_budget, seed=args.seed, logging_steps=50, use_cpu=True,
                    extra={"teacher": teacher, "queries": os.path.join(args.data, args.queries),
                           "run": os.path.join(args.data, "candidates.trec")})
    steps = max([h.get("step", 0) for h in res.log_history] or [0])
    print(f"trained {steps} steps in {res.seconds / 60:.1f} min ({res.seconds / max(1, steps):.2f} s/step); "
          f"saved {res.output_dir}")
    print("step   loss     kl      orth")
    for h in res.log_history:
        if "loss" in h:
            print(f"{h['step']:5d}  {h['loss']:.4f}  {h.get('kl', float('nan')):.4f}  {h.get('orth', float('nan')):.4f}")
    print(f"# wall {time.perf_counter() - t0:.0f} s; " + hardware_line().replace("hardware:", "at end:"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
