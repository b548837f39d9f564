"""Speed of pointwise yes/no scoring: our ``hf`` backend vs a plain one-pair-at-a-time loop.

Same model (SmolLM2-135M-Instruct, fp32), same (query, passage) pairs (DL19 BM25 top-D of the
first Q queries), same prompts, same hardware, one process. Variants:

- ``plain loop``: ``AutoModelForCausalLM(**tokenizer(prompt))`` per pair, logits of the last
  position -> log-softmax -> yes/no forms (what a first implementation does);
- ``hf b=B no-reuse``: our backend, length-sorted left-padded batches, fp32 head at the last
  position only;
- ``hf b=B prefix-reuse``: plus the shared prefix (system prompt + instruction + query) run once
  per query, each passage paying only for its own tokens.

The maths is the same in all variants, so scores must agree (max |diff| printed). The script also
counts the FLOPs each variant needs on these prompts (linear layers from the model's config, token
counts from its tokenizer; attention's score products are printed as a share and left out): the
ceiling prefix reuse + a last-position head can reach on a compute-bound CPU. Run it under the CPU lock:

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/pointwise_speed.py > benchmarks/results/pointwise_speed.txt
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def linear_macs(config) -> tuple[int, int]:
    """Multiply-accumulates per token of a Llama-style decoder: (body linear layers, output head)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q = o = h * config.num_attention_heads * head_dim
    kv = 2 * h * config.num_key_value_heads * head_dim
    mlp = 3 * h * config.intermediate_size  # gate, up, down
    return layers * (q + kv + o + mlp), h * config.vocab_size


def flop_ceiling(be, prompts_by_query) -> dict:
    """Token counts and the FLOP ratio plain loop / (shared prefix once + last-position head)."""
    cfg = be.model.config
    body, head = linear_macs(cfg)
    q_dim = cfg.num_attention_heads * (getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    n_prompts = plain = reuse = attn = 0
    lens, prefixes = [], []
    for prompts in prompts_by_query:
        ids = [be.encode(p) for p in prompts]
        common = 0
        while all(len(x) > common for x in ids) and len({x[common] for x in ids}) == 1:
            common += 1
        prefixes.append(common)
        for x in ids:
            lens.append(len(x))
            plain += len(x) * (body + head)
            attn += cfg.num_hidden_layers * len(x) * (len(x) + 1) * q_dim  # QK^T and AV, causal
            reuse += (len(x) - common) * body + head
            n_prompts += 1
        reuse += common * body
    return {"prompts": n_prompts, "mean_tokens": sum(lens) / len(lens), "prefix": (min(prefixes), max(prefixes)),
            "body_macs": body, "head_macs": head, "ratio": plain / reuse, "attn_share": attn / (plain + attn)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=3)
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,8")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.types import Ranking, Run

    ds = load_dataset("dl19")
    qids = list(ds.run)[: args.queries]
    first = Run(name="bm25")
    for q in qids:
        first[q] = ds.run[q].top(args.docs)
    n_pairs = sum(len(first[q]) for q in qids)
    ds.qrels = {q: ds.qrels[q] for q in qids}
    header(f"model: smollm2-135m (SmolLM2-135M-Instruct, GGUF Q4_1 dequantized), dtype float32, yes/no pointwise; "
           f"threads {args.threads}",
           f"data: DL19 BM25 top-{args.docs} of the first {len(qids)} queries ({n_pairs} pairs)")
    be = load_backend("hf", model="smollm2-135m", dtype="float32", batch_size=8)
    model, tok = be.model, be.tokenizer

    per, extra, scores = {}, {}, {}
    rr = PointwiseReranker(be, method="yesno", cache=False, progress=False)
    yes = [be.token_id(c) for c in rr.yes_forms]
    no = [be.token_id(c) for c in rr.no_forms]

    # warm-up (allocator, kernels)
    d0 = ds.corpus.get(first[qids[0]].docids[0])
    be.next_token_logprobs([rr.prompt(ds.queries[qids[0]], rr.prepare_doc(d0))], ("yes",))

    # 1. the plain loop
    t0 = time.perf_counter()
    plain = Run(name="plain")
    for q in qids:
        rows = []
        for d in ds.corpus.get_many(first[q].docids):
            ids = tok(be.render(rr.prompt(ds.queries[q], rr.prepare_doc(d))), add_special_tokens=False,
                      return_tensors="pt")
            with torch.inference_mode():
                lp = torch.log_softmax(model(**ids).logits[0, -1].float(), -1)
            rows.append((d.docid, float(torch.logsumexp(lp[yes], 0) - torch.logsumexp(lp[no], 0))))
        plain[q] = Ranking.from_scores(q, rows)
    secs = time.perf_counter() - t0
    runs = {"plain loop (1 pair/forward)": (plain, secs)}

    # 2. our backend, with and without prefix reuse
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        for reuse in (False, True):
            be.batch_size, be.prefix_reuse = bs, reuse
            t0 = time.perf_counter()
            out = rr.rerank_run(first, ds.queries, ds.corpus, depth=args.docs)
            runs[f"hf b={bs} {'prefix-reuse' if reuse else 'no-reuse'}"] = (out, time.perf_counter() - t0)

    base = {(q, d.docid): d.score for q in qids for d in plain[q].docs}
    plain_rate = n_pairs / runs["plain loop (1 pair/forward)"][1]
    for name, (run, secs) in runs.items():
        per[name] = evaluate(run, ds.qrels, ["nDCG@10"], rel=ds.rel, per_query=True)
        diff = max(abs(d.score - base[(q, d.docid)]) for q in qids for d in run[q].docs)
        rate = n_pairs / secs
        extra[name] = {"pairs": str(n_pairs), "seconds": f"{secs:.1f}", "docs/s": f"{rate:.2f}",
                       "x plain": f"{rate / plain_rate:.2f}", "max|score diff|": f"{diff:.1e}"}
        scores[name] = secs
    print(format_table(per, extra=extra))
    best = max((n for n in runs if n.startswith("hf")), key=lambda n: n_pairs / scores[n])
    print(f"best: {best}: {scores['plain loop (1 pair/forward)'] / scores[best]:.2f}x the plain loop; "
          f"prefix reuse vs none at b=8: {scores['hf b=8 no-reuse'] / scores['hf b=8 prefix-reuse']:.2f}x"
          if "hf b=8 no-reuse" in scores else "")
    f = flop_ceiling(be, [[rr.prompt(ds.queries[q], rr.prepare_doc(d)) for d in ds.corpus.get_many(first[q].docids)]
                          for q in qids])
    print()
    print(f"FLOP ceiling on these {f['prompts']} prompts: mean prompt {f['mean_tokens']:.1f} tokens, shared prefix "
          f"(system + query) {f['prefix'][0]}-{f['prefix'][1]} tokens; linear layers "
          f"{f['body_macs'] / 1e6:.1f}M MACs/token in the body, {f['head_macs'] / 1e6:.1f}M in the head.")
    print(f"The plain loop pays every token x (body + head); prefix reuse with the head at the last position pays "
          f"the prefix once per query, each prompt's own tokens x body, and one head: {f['ratio']:.2f}x fewer FLOPs "
          f"(the most a compute-bound CPU can gain from them; batching adds the rest of the measured speed-up).")
    print(f"Attention's score products (QK^T, AV), left out above: {f['attn_share']:.1%} of the plain loop's MACs.")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
