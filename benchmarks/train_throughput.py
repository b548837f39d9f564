"""Training throughput of SmolLM2-135M on this CPU: tokens/s and model FLOP utilisation.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/train_throughput.py --data DIR --threads 2

First the CPU's measured matmul peak (square fp32 and bf16 products, the best of several), then
a few optimizer steps of each training set-up on the same rows: pointwise distillation
(groups of 8 (query, passage) prompts, last-position head only) with LoRA and with full
fine-tuning, in fp32 and in bf16 autocast, and FIRST's combined loss on 20-passage windows.
Model FLOP utilisation = 6 x params x tokens/s / peak (the usual training estimate; LoRA skips
the weight gradients, about a third of it, and the pointwise step runs the 28M-parameter output
layer at one position only, so the work really done is lower: both are printed).
``DIR`` holds queries.tsv, qrels.txt, candidates.trec and teacher.trec from ``rankstack train
distill`` (or the synthetic-data script): synthetic DL19 queries, no DL19 query or judgement.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def matmul_peak(dtype, threads: int, n: int = 2048, reps: int = 8) -> float:
    import torch

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--groups", type=int, default=2, help="pointwise: queries (groups of 8 prompts) per step")
    ap.add_argument("--max-doc-tokens", type=int, default=96)
    ap.add_argument("--only", default="", help="comma list of set-up names to run (default all)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data.datasets import resolve_corpus
    from rankstack.data.trec import read_run
    from rankstack.rerankers.backends import load_backend
    from rankstack.training.distill import train_pointwise_distill
    from rankstack.training.examples import first_examples, pointwise_examples
    from rankstack.training.sft import train_sft
    from rankstack.training.synthetic import read_synthetic

    header(f"torch {torch.__version__}, threads {args.threads}")
    peaks = {"float32": matmul_peak(torch.float32, args.threads), "bfloat16": matmul_peak(torch.bfloat16, args.threads)}
    print("matmul peak (2048^3, best of 8): " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items()))

    corpus = resolve_corpus("dl19")
    syn = read_synthetic(os.path.join(args.data, "queries.tsv"), os.path.join(args.data, "qrels.txt"))
    cands, teacher = read_run(os.path.join(args.data, "candidates.trec")), read_run(os.path.join(args.data, "teacher.trec"))
    be = load_backend("hf", model=args.model, dtype="float32")
    params = sum(p.numel() for p in be.model.parameters())
    emb = be.model.get_input_embeddings().weight.numel()
    print(f"model: {args.model}, {params / 1e6:.1f}M parameters ({(params - emb) / 1e6:.1f}M without the tied "
          f"embedding/output matrix)")
    n_groups = args.steps * args.groups
    qids = list(syn.queries)[:n_groups]
    pw = pointwise_examples(syn.queries, None, cands, corpus, backend=be, teacher=teacher, qids=qids, group_size=8,
                            n_top=2, depth=30, max_doc_tokens=args.max_doc_tokens)
    fw = first_examples(syn.queries, None, cands, corpus, backend=be, teacher=teacher, qids=qids[:args.steps * 2],
                        window=20, step=20, depth=20, max_passage_tokens=args.max_doc_tokens)
    del be
    setups = [("pointwise LoRA r16 fp32", "pw", True, False), ("pointwise LoRA r16 bf16", "pw", True, True),
              ("pointwise full fp32", "pw", False, False), ("pointwise full bf16", "pw", False, True),
              ("FIRST LoRA r16 fp32", "first", True, False), ("FIRST LoRA r16 bf16", "first", True, True)]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    print(f"rows: pointwise {len(pw)} prompts in {n_groups} groups, {args.steps} steps of {args.groups} groups; "
          f"FIRST {len(fw)} windows, {args.steps} steps of 2")
    print(f"{'set-up':28s} {'tokens':>8s} {'seconds':>8s} {'tokens/s':>9s} {'6PT/peak':>9s}")
    for name, kind, lora, bf16 in setups:
        if only and name not in only:
            continue
        kw = dict(model=args.model, output_dir="/tmp/rankstack-throughput", lora=lora, max_steps=args.steps,
                  use_cpu=True, bf16=bf16, save_model=False, logging_steps=args.steps, warmup=0.0)
        if kind == "pw":
            res = train_pointwise_distill(pw, groups_per_step=args.groups, **kw)
        else:
            kw.pop("warmup")
            res = train_sft(fw, loss="first", batch_size=2, max_length=2048, **kw)
        tps = res.tokens_per_second
        mfu = 6 * params * tps / peaks["bfloat16" if bf16 else "float32"]
        print(f"{name:28s} {res.tokens:8d} {res.seconds:8.1f} {tps:9.1f} {mfu:9.1%}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
