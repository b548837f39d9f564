"""FIRST's combined loss (LM + 10 x weighted RankNet on the first-identifier letter logits) on a tiny model.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/train_first_loss.py

A tiny random Llama (2 layers, hidden 64) with SmolLM2's tokenizer is trained, full
fine-tuning through TRL's SFTTrainer with ``loss="first"``, on FIRST window examples from the
training half of DL19 (windows of 5 from BM25's top 20, passages cut to 32 tokens; target = the
ideal permutation by grade). Before and after, we read the letter logits where the model writes
the first identifier (prompt + "[", as FIRST does at inference) and count how many ordered
pairs of the target the logits agree with, on the training windows and on held-out ones.
"""

from __future__ import annotations

import argparse
import sys

from _common import footer, header  # also sets the offline env defaults


def pair_agreement(model, tok, ds, letters) -> float:
    """Fraction of target pairs (i before j) whose letter logits agree (s_i > s_j)."""
    import torch

    from rankstack.training._common import renderer
    from rankstack.training.examples import prompt_from_row

    render = renderer(tok)
    model.eval()
    agree = total = 0
    with torch.no_grad():
        for row in ds:
            ids = tok(render(prompt_from_row(row)) + "[", add_special_tokens=False, return_tensors="pt")["input_ids"]
            logits = model(input_ids=ids).logits[0, -1]
            order = [t - 1 for t in row["teacher"]]
            grades = row["grades"]
            s = [float(logits[letters[j]]) for j in range(len(order))]
            for a in range(len(order)):
                for b in range(a + 1, len(order)):
                    i, j = order[a], order[b]
                    if grades[i] == grades[j]:
                        continue  # tied grades: the target's order there is a convention, not a preference
                    total += 1
                    agree += s[i] > s[j]
    model.train()
    return agree / max(1, total)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rank-loss", default="ranknet")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.models import load_tokenizer
    from rankstack.rerankers.backends import load_backend
    from rankstack.training.examples import first_examples, split_queries
    from rankstack.training.losses import letter_token_ids
    from rankstack.training.sft import train_sft

    ds = load_dataset("dl19")
    train_q, test_q = split_queries(ds.judged_queries, 0.5, seed=args.seed)
    tok = load_tokenizer("smollm2-135m")
    be = load_backend("hf", model="smollm2-135m", dtype="float32")  # the FIRST reranker cuts passages with it

    def windows(qids):
        return first_examples(ds.queries, ds.qrels, ds.run, ds.corpus, qids=qids, backend=be, window=5, step=5,
                              depth=20, max_passage_tokens=32)

    train_ds, test_ds = windows(train_q), windows(test_q)
    torch.manual_seed(args.seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    letters = letter_token_ids(tok, 5)
    before = (pair_agreement(model, tok, train_ds, letters), pair_agreement(model, tok, test_ds, letters))
    res = train_sft(train_ds, model=(model, tok), output_dir="/tmp/rankstack-train/first-tiny", loss="first",
                    rank_loss=args.rank_loss, lora=False, epochs=args.epochs, learning_rate=args.lr, batch_size=4,
                    max_length=1024, use_cpu=True, bf16=False, seed=args.seed, logging_steps=5, save_model=False)
    after = (pair_agreement(model, tok, train_ds, letters), pair_agreement(model, tok, test_ds, letters))

    logs = [h for h in res.log_history if "loss" in h]
    print(f"model: tiny random Llama (2 layers, hidden 64) + SmolLM2 tokenizer, full fine-tuning, fp32, CPU; "
          f"loss = LM + {10 if args.rank_loss == 'ranknet' else 'default x'} {args.rank_loss} on letter logits; "
          f"{args.epochs} epochs, batch 4, lr {args.lr}")
    print(f"data: DL19 seeded split (seed {args.seed}): {len(train_ds)} training windows ({len(train_q)} queries), "
          f"{len(test_ds)} held-out windows ({len(test_q)} queries); windows of 5 from BM25 top 20, passages "
          f"<= 32 tokens; windows with one grade only skipped")
    print()
    print("step  loss     lm_loss  rank_loss")
    for h in logs:
        print(f"{h['step']:4d}  {h['loss']:.4f}  {h.get('lm_loss', float('nan')):.4f}   {h.get('rank_loss', float('nan')):.4f}")
    print()
    print("pairs of differently graded passages whose letter-logit order agrees with the target:")
    print(f"  training windows: before {before[0]:.3f}, after {after[0]:.3f}")
    print(f"  held-out windows: before {before[1]:.3f}, after {after[1]:.3f}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
