"""GRPO of SmolLM2-135M-Instruct with the Rank-R1 reward on DL19 setwise prompts (CPU, LoRA).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/train_grpo_setwise.py

Sets of 4 shuffled BM25 top-20 candidates from the training half of DL19 (seeded split), the
Rank-R1 prompt of the setwise reranker; the assistant turn starts with
``<think>\n</think>\n<answer>[`` (the setwise reranker's ``reasoning=False`` prefix, the no-reasoning variant for a 135M model), so a
completion is ``k]</answer>`` and the reward is 1 when k is a top-graded document of the set.
Prints the reward curve, the mean of the first and last 10 steps, greedy accuracy on held-out
sets before and after, and a rerank with the trained model through the setwise reranker.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


from rankstack.rerankers.prompts.setwise import SETWISE_DIRECT  # noqa: E402

PREFIX = SETWISE_DIRECT.assistant_prefix  # the setwise reranker's reasoning=False prefix


def accuracy(model: str, ds, dtype="float32") -> float:
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.backends.base import SamplingParams
    from rankstack.training.examples import prompt_from_row
    from rankstack.training.rewards import rankr1_reward

    be = load_backend("hf", model=model, dtype=dtype, batch_size=8)
    outs = be.generate([prompt_from_row(r) for r in ds], SamplingParams(max_new_tokens=8, stop=("</answer>",)))
    texts = [o[0].text + ("</answer>" if not o[0].text.endswith("</answer>") else "") for o in outs]
    return sum(rankr1_reward(texts, gold=ds["gold"], assistant_prefix=ds["assistant_prefix"])) / len(ds)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="/tmp/rankstack-train/grpo-setwise")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4, help="completions per step")
    ap.add_argument("--size", type=int, default=4)
    ap.add_argument("--doc-tokens", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.registry import load_reranker
    from rankstack.training.examples import setwise_examples, split_queries
    from rankstack.training.grpo import reward_curve, train_grpo

    ds = load_dataset("dl19")
    train_q, test_q = split_queries(ds.judged_queries, 0.5, seed=args.seed)
    tok_backend = load_backend("hf", model=args.model, dtype="float32")

    def sets(qids, n_sets):
        # reasoning=False: the setwise reranker's no-reasoning prefix (PREFIX), the target its label only
        return setwise_examples(ds.queries, ds.qrels, ds.run, ds.corpus, qids=qids, backend=tok_backend,
                                size=args.size, n_sets=n_sets, depth=20, positive_min=2, seed=args.seed,
                                max_doc_tokens=args.doc_tokens, reasoning=False)

    train_ds, test_ds = sets(train_q, 4), sets(test_q[:10], 1)
    acc_before = accuracy(args.model, test_ds)
    res = train_grpo(train_ds, model=args.model, output_dir=args.out, rewards="rankr1",
                     num_generations=args.num_generations, batch_size=args.batch_size, max_completion_length=8,
                     max_steps=args.steps, learning_rate=args.lr, temperature=1.0, use_cpu=True, bf16=False,
                     seed=args.seed)
    curve = reward_curve(res)
    acc_after = accuracy(str(res.output_dir), test_ds)

    rr = load_reranker("setwise", model=str(res.output_dir), k=3, num_child=4, max_new_tokens=8, reasoning=False,
                       cache=False, progress=False, backend_options={"dtype": "float32"})
    q = test_q[0]
    t0 = time.perf_counter()
    from rankstack.rerankers.engine import rerank_queries

    out, rr_stats = rerank_queries(rr, {q: ds.queries[q]}, {q: ds.corpus.get_many(ds.run[q].docids[:10])})
    ranking = out[q]
    t_rr = time.perf_counter() - t0

    first, last = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    print(f"model: {args.model} (SmolLM2-135M-Instruct), LoRA r16 a32, fp32, CPU; reward rankr1; "
          f"{args.num_generations} generations, {args.batch_size // args.num_generations} prompts/step, "
          f"max_completion_length 8, temperature 1.0, lr {args.lr}, beta 0")
    print(f"data: DL19 seeded split (seed {args.seed}): {len(train_q)} train queries -> {len(train_ds)} sets of "
          f"{args.size} (BM25 top 20, passages cut to {args.doc_tokens} tokens, gold = grade-max docs, grade >= 2 "
          f"present); held-out: {len(test_ds)} sets from 10 of the {len(test_q)} held-out queries; assistant prefix {PREFIX!r}")
    print(f"trained {len(curve)} steps in {res.seconds / 60:.2f} min")
    print()
    print("step  mean reward")
    for i, r in enumerate(curve, 1):
        print(f"{i:4d}  {r:.3f}")
    print()
    print(f"mean reward, first 10 steps: {first:.3f}; last 10 steps: {last:.3f}; difference {last - first:+.3f}")
    print(f"held-out greedy accuracy (reward 1): before {acc_before:.3f}, after {acc_after:.3f} "
          f"({len(test_ds)} sets; chance about 1/{args.size} plus ties)")
    print(f"trained model through the setwise reranker (reasoning=False: the training prefix; k=3, 5 docs per prompt, max 8 new tokens), query {q} top-10: "
          f"{ranking.docids[:3]} in {t_rr:.1f} s; parse counts {rr_stats.parse_counts}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
