"""bf16 vs fp32 speed of the ``hf`` backend on this machine's CPU (what ``dtype="auto"`` chooses from).

Same model (SmolLM2-135M-Instruct), same pointwise yes/no prompts (DL19 BM25 top-D of the first Q
queries), same batch size and threads; each dtype scores every pair ``--repeat`` times after a
warm-up (the best repeat is reported), then generates ``--gen-tokens`` tokens greedily for a few
prompts. The header prints the CPU flags that decide the outcome (``avx512_bf16`` / ``amx_bf16``:
native bf16 matrix instructions; without them torch emulates bf16 and it runs slower than fp32).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/cpu_dtype.py > benchmarks/results/cpu_dtype.txt
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--gen-prompts", type=int, default=4)
    ap.add_argument("--gen-tokens", type=int, default=32)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from rankstack.data import load_dataset
    from rankstack.hardware import default_cpu_dtype
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.backends.base import SamplingParams
    from rankstack.rerankers.pointwise import NO_FORMS, YES_FORMS, PointwiseReranker

    torch.set_num_threads(args.threads)
    ds = load_dataset("dl19")
    qids = list(ds.run)[: args.queries]
    header(f"model: smollm2-135m (SmolLM2-135M-Instruct), backend hf, batch {args.batch_size}, prefix reuse on, "
           f"torch {torch.__version__}, threads {args.threads}",
           f"data: DL19 BM25 top-{args.docs} of the first {len(qids)} queries, pointwise yes/no prompts "
           f"(passages cut to 128 tokens); generation: {args.gen_prompts} prompts x {args.gen_tokens} tokens, greedy",
           f"default_cpu_dtype() on this CPU: {default_cpu_dtype()}")
    cands = YES_FORMS + NO_FORMS
    rows = {}
    for dtype in ("float32", "bfloat16"):
        be = load_backend("hf", model="smollm2-135m", dtype=dtype, batch_size=args.batch_size)
        rr = PointwiseReranker(be, cache=False, progress=False, max_doc_tokens=128)
        prompts = [rr.prompt(ds.queries[q], rr.prepare_doc(d)) for q in qids
                   for d in ds.corpus.get_many(ds.run[q].docids[: args.docs])]
        be.next_token_logprobs(prompts[:2], cands)  # warm-up: kernels, allocator
        best, lp = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            lp = be.next_token_logprobs(prompts, cands)
            best = min(best, time.perf_counter() - t0)
        gp = prompts[: args.gen_prompts]
        t0 = time.perf_counter()
        outs = be.generate(gp, SamplingParams(max_new_tokens=args.gen_tokens))
        gen_s = time.perf_counter() - t0
        gen_tok = sum(c.num_tokens for o in outs for c in o)
        yes = np.logaddexp.reduce(lp[:, :4].astype(np.float64), axis=1)
        no = np.logaddexp.reduce(lp[:, 4:].astype(np.float64), axis=1)
        rows[dtype] = {"pairs": len(prompts), "score_s": best, "pairs_s": len(prompts) / best, "gen_tok": gen_tok,
                       "gen_s": gen_s, "tok_s": gen_tok / gen_s, "scores": yes - no}
        del be, rr
    f32, b16 = rows["float32"], rows["bfloat16"]
    diff = np.abs(f32["scores"] - b16["scores"])
    agree = np.mean([np.argmax(f32["scores"][i:i + args.docs]) == np.argmax(b16["scores"][i:i + args.docs])
                     for i in range(0, len(diff), args.docs)])
    print()
    print(f"{'dtype':10s} {'pairs':>5s} {'score s':>8s} {'pairs/s':>8s} {'gen tokens':>10s} {'gen s':>7s} {'tok/s':>7s}")
    for name, r in rows.items():
        print(f"{name:10s} {r['pairs']:5d} {r['score_s']:8.2f} {r['pairs_s']:8.2f} {r['gen_tok']:10d} "
              f"{r['gen_s']:7.2f} {r['tok_s']:7.2f}")
    print()
    print(f"bf16 / fp32 speed: scoring {b16['pairs_s'] / f32['pairs_s']:.2f}x, generation "
          f"{b16['tok_s'] / f32['tok_s']:.2f}x  (> 1: bf16 faster on this CPU)")
    print(f"yes/no log-odds, bf16 vs fp32 (fp32 output layer in both): max |diff| {diff.max():.3f}, "
          f"mean {diff.mean():.3f}; same top passage in {agree:.0%} of the queries")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
