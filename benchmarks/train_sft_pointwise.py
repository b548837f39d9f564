"""SFT of SmolLM2-135M-Instruct as a pointwise yes/no reranker on half of DL19, evaluated on the other half.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/train_sft_pointwise.py

Queries split by a seeded shuffle (seed 0): train on one half (positives grade >= 2, hard
negatives from BM25's top 30, random negatives from other queries' candidates), LoRA r16, 2
epoch; then rerank BM25's top 20 of the held-out half with the real pointwise reranker before
and after training, alone and fused with BM25 (0.8 z-score), beside BM25 itself.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="/tmp/rankstack-train/sft-pointwise")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--n-pos", type=int, default=3)
    ap.add_argument("--n-hard", type=int, default=4)
    ap.add_argument("--n-random", type=int, default=2)
    ap.add_argument("--eval-dtype", default="float32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.registry import load_reranker
    from rankstack.retrieval.fusion import interpolate
    from rankstack.training.examples import pointwise_examples, split_queries
    from rankstack.training.sft import train_sft
    from rankstack.types import Run

    ds = load_dataset("dl19")
    train_q, test_q = split_queries(ds.judged_queries, 0.5, seed=args.seed)
    bm25 = Run({q: ds.run[q].top(args.depth) for q in test_q}, name="bm25")
    qrels_test = {q: ds.qrels[q] for q in test_q}

    # examples rendered by the pointwise reranker itself (its template, its passage budget)
    tok_backend = load_backend("hf", model=args.model, dtype="float32")
    train_ds = pointwise_examples(ds.queries, ds.qrels, ds.run, ds.corpus, qids=train_q, backend=tok_backend,
                                  method="yesno", n_pos=args.n_pos, n_hard=args.n_hard, n_random=args.n_random,
                                  positive_min=2, seed=args.seed)
    counts = {k: train_ds["completion"].count(k) for k in ("Yes", "No")}

    def rerank(model, cache):
        rr = load_reranker("pointwise", model=model, backend_options={"dtype": args.eval_dtype, "batch_size": 8},
                           cache=cache, progress=False)
        t0 = time.perf_counter()
        run = rr.rerank_run(bm25, ds.queries, ds.corpus, depth=args.depth)
        return run, time.perf_counter() - t0

    zero, t_zero = rerank(args.model, True)
    t0 = time.perf_counter()
    res = train_sft(train_ds, model=args.model, output_dir=args.out, epochs=args.epochs, learning_rate=args.lr,
                    batch_size=args.batch_size, max_length=args.max_length, use_cpu=True, bf16=False, seed=args.seed,
                    logging_steps=5)
    train_min = (time.perf_counter() - t0) / 60
    trained, t_trained = rerank(args.out, False)  # no cache: the folder's name is its cache identity

    runs = {"bm25": bm25, "zero-shot yes/no": zero, "zero-shot + bm25": interpolate([zero, bm25], [0.8, 0.2]),
            "sft yes/no": trained, "sft + bm25": interpolate([trained, bm25], [0.8, 0.2])}
    per = {n: evaluate(r, qrels_test, ["nDCG@10", "RR(rel=2)@10"], rel=2, per_query=True) for n, r in runs.items()}
    extra = {"zero-shot yes/no": {"rerank s": f"{t_zero:.0f}"}, "sft yes/no": {"rerank s": f"{t_trained:.0f}"}}

    print(f"model: {args.model} (SmolLM2-135M-Instruct), LoRA r16 a32 all-linear, fp32 training, "
          f"eval dtype {args.eval_dtype} (output layer fp32)")
    print(f"data: DL19, seeded split (seed {args.seed}): {len(train_q)} train / {len(test_q)} held-out queries; "
          f"{len(train_ds)} examples ({counts['Yes']} Yes / {counts['No']} No; per query <= {args.n_pos} pos "
          f"(grade >= 2), {args.n_hard} hard (BM25 top 30), {args.n_random} random)")
    print(f"training: {args.epochs} epoch, batch {args.batch_size}, lr {args.lr}, max_length {args.max_length}, "
          f"{len([h for h in res.log_history if 'loss' in h])} logged steps; train wall {res.seconds / 60:.2f} min "
          f"(with loading/saving {train_min:.2f} min)")
    print("loss curve (every 5 steps): " + ", ".join(f"{x:.3f}" for x in res.losses()))
    print(f"eval: BM25 top-{args.depth} of the {len(test_q)} held-out queries, fusion 0.8 rerank + 0.2 BM25 (z-score)")
    print()
    print(format_table(per, baseline="bm25", extra=extra))
    means = {n: sum(v["nDCG@10"].values()) / len(v["nDCG@10"]) for n, v in per.items()}
    print()
    print(f"sft - zero-shot nDCG@10: {means['sft yes/no'] - means['zero-shot yes/no']:+.4f}; "
          f"sft - bm25: {means['sft yes/no'] - means['bm25']:+.4f}; "
          f"sft+bm25 - bm25: {means['sft + bm25'] - means['bm25']:+.4f}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
