"""Pointwise distillation: a causal LM's relevance log-odds learns a teacher's scores (METHODS.md 9).

The student's score of a (query, passage) prompt is what the pointwise reranker reads at
inference: ``logsumexp(logits[yes forms]) - logsumexp(logits[no forms])`` at the last prompt
position (``yesno``; ``prorank``: ``logit("1") - logit("0")``); for ``qlm`` (query likelihood)
the mean log-probability of the query's tokens after the passage prompt, as inference reads it
(the scale matters: summed log-probabilities differ by tens of nats between passages, and a
listwise loss against the teacher's z-scores would spend its steps shrinking those gaps). Rows of
:func:`rankstack.training.examples.pointwise_examples` built with ``teacher=`` are grouped by
query (a group = the candidates drawn for one query), and the loss compares the group's student
scores with the teacher's:

- ``listwise`` **[DEFAULT]**: cross-entropy between softmax(teacher z-scores / T) and
  softmax(student scores) over the group (listwise distillation, as in RankT5's softmax loss
  with soft labels);
- ``margin_mse``: Margin-MSE (Hofstaetter et al. 2020): over every pair of the group,
  ``((s_i - s_j) - (z_i - z_j))^2`` with z the teacher's per-query z-scores (the scale of raw
  teacher scores, e.g. cosines in [0, 1], does not match log-odds; z-scores do) **[DEFAULT]**;
- ``bce``: binary cross-entropy of sigmoid(s) against the soft target sigmoid(z) (the row's
  ``target``), pointwise.

Only the last position's output layer runs (``logits_to_keep=1``, left padding with position
ids), so a step costs the prompt tokens and nothing else. Training runs on
``transformers.Trainer`` (LoRA through peft, or full fine-tuning); the model is saved merged, a
plain folder ``load_reranker("pointwise", model=DIR)`` loads. The result reports training
tokens and tokens/s.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from pathlib import Path

from rankstack.errors import RankstackError
from rankstack.training._common import device_args, load_model, log_history, lora_config, renderer, save
from rankstack.training.sft import TrainResult

log = logging.getLogger(__name__)

LOSSES = ("listwise", "margin_mse", "bce")


def score_token_ids(tokenizer, method: str = "yesno") -> tuple[list[int], list[int]]:
    """Token ids of the positive and negative answer forms the pointwise reranker reads."""
    from rankstack.rerankers.pointwise import NO_FORMS, YES_FORMS

    forms = {"yesno": (YES_FORMS, NO_FORMS), "prorank": (("1",), ("0",))}
    if method == "qlm":
        return [], []  # scored on the query's own tokens
    if method not in forms:
        raise RankstackError(f"pointwise distillation trains 'yesno', 'prorank' or 'qlm' scores, not {method!r} "
                             "(score10/erank: train their 0-10 bins with train_sft)")

    def ids(words):
        out = []
        for w in words:
            t = tokenizer(w, add_special_tokens=False)["input_ids"]
            if len(t) != 1:
                raise RankstackError(f"{w!r} is {len(t)} tokens for this tokenizer; a score form must be one token")
            out.append(t[0])
        return out

    pos, neg = forms[method]
    return ids(pos), ids(neg)


def group_examples(dataset, tokenizer, max_length: int = 512, method: str = "yesno") -> list[dict]:
    """Rows of a teacher-built pointwise dataset -> one item per query: token ids of every prompt
    (rendered as the ``hf`` backend renders them; ``qlm``: followed by the query's tokens, the
    row's ``completion``, and their count in ``n_cont``), the teacher's z-scores and soft targets.
    Prompts longer than ``max_length`` tokens are left out (counted in the log); groups with
    fewer than two candidates teach a ranking loss nothing and are left out too."""
    from rankstack.training.examples import prompt_from_row

    need = {"qid", "prompt", "teacher_score", "target"} | ({"completion"} if method == "qlm" else set())
    if not need <= set(dataset.column_names):
        raise RankstackError(f"distillation needs the columns {sorted(need)} (build the examples with teacher=); "
                             f"the dataset has {dataset.column_names}")
    render = renderer(tokenizer)
    groups: dict[str, list] = defaultdict(list)
    too_long = 0
    cont: dict[str, list[int]] = {}
    empty = 0
    for row in dataset:
        ids = tokenizer(render(prompt_from_row(row)), add_special_tokens=False)["input_ids"]
        if method == "qlm":
            if row["qid"] not in cont:
                cont[row["qid"]] = tokenizer(row["completion"] or "", add_special_tokens=False)["input_ids"]
            if not cont[row["qid"]]:
                empty += 1  # an empty query has no tokens to learn from
                continue
            ids = ids + cont[row["qid"]]
        if len(ids) > max_length:
            too_long += 1
            continue
        groups[row["qid"]].append((ids, float(row["teacher_score"]), float(row["target"])))
    if too_long:
        log.warning("%d prompts are longer than max_length=%d tokens and were left out", too_long, max_length)
    if empty:
        log.warning("%d rows have an empty query (nothing for query likelihood to learn) and were left out", empty)
    items = []
    for qid, rows in groups.items():
        if len(rows) < 2:
            continue
        t = [r[1] for r in rows]
        mean = sum(t) / len(t)
        sd = math.sqrt(sum((v - mean) ** 2 for v in t) / len(t)) or 1.0
        items.append({"qid": qid, "input_ids": [r[0] for r in rows], "z": [(v - mean) / sd for v in t],
                      "target": [r[2] for r in rows], "n_cont": len(cont.get(qid, ()))})
    if not items:
        raise RankstackError("no query has two or more usable candidates: nothing to distil")
    return items


class _Collator:
    """Groups -> one left-padded batch of every prompt, with the group of each row."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict:
        import torch

        seqs = [s for it in items for s in it["input_ids"]]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        n = max(len(it["input_ids"]) for it in items)
        z = torch.zeros((len(items), n))
        target = torch.zeros((len(items), n))
        valid = torch.zeros((len(items), n), dtype=torch.bool)
        index = torch.zeros((len(items), n), dtype=torch.long)
        row = 0
        for g, it in enumerate(items):
            k = len(it["input_ids"])
            z[g, :k] = torch.tensor(it["z"])
            target[g, :k] = torch.tensor(it["target"])
            valid[g, :k] = True
            index[g, :k] = torch.arange(row, row + k)
            row += k
        n_cont = torch.tensor([it.get("n_cont", 0) for it in items for _ in it["input_ids"]], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
                "z": z, "target": target, "valid": valid, "index": index, "n_cont": n_cont}


def distill_loss(scores, z, target, valid, loss: str = "listwise", temperature: float = 1.0):
    """The group loss on student scores ``(groups, n)`` against teacher z-scores and soft targets."""
    import torch
    import torch.nn.functional as F

    if loss == "listwise":
        neg = torch.finfo(scores.dtype).min
        p_teacher = torch.softmax((z / temperature).masked_fill(~valid, neg), dim=-1)
        logp = torch.log_softmax(scores.masked_fill(~valid, neg), dim=-1).masked_fill(~valid, 0.0)
        return -(p_teacher * logp).sum(-1).mean()
    if loss == "margin_mse":
        ds = scores[:, :, None] - scores[:, None, :]
        dz = z[:, :, None] - z[:, None, :]
        pairs = valid[:, :, None] & valid[:, None, :]
        pairs = pairs & torch.triu(torch.ones_like(pairs[0]), diagonal=1)[None]
        return ((ds - dz) ** 2)[pairs].mean()
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(scores[valid], target[valid])
    raise RankstackError(f"unknown distillation loss {loss!r}; one of {', '.join(LOSSES)}")


def qlm_scores(model, inputs):
    """Query likelihood of each row: the mean log-probability of its last ``n_cont`` tokens (the
    query; left padding puts every row's query at the end), the output layer run on those only."""
    import torch

    n = inputs["n_cont"]
    width = int(n.max())
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"], logits_to_keep=width + 1, use_cache=False)
    logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)  # position j predicts token j + 1
    targets = inputs["input_ids"][:, -width:]
    tok = logp.gather(-1, targets[..., None])[..., 0]
    mask = torch.arange(width, device=n.device)[None, :] >= (width - n)[:, None]
    return out, (tok * mask).sum(-1) / n.clamp(min=1)


def _trainer_class():
    import torch
    from transformers import Trainer

    class DistillTrainer(Trainer):
        """``Trainer`` whose loss is :func:`distill_loss` on the pointwise reranker's score."""

        def __init__(self, *args, pos_ids, neg_ids, loss_name, temperature, **kwargs):
            super().__init__(*args, **kwargs)
            self.pos_ids, self.neg_ids = pos_ids, neg_ids
            self.loss_name, self.temperature = loss_name, temperature
            self.tokens_seen = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.pos_ids:
                out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            position_ids=inputs["position_ids"], logits_to_keep=1, use_cache=False)
                logits = out.logits[:, -1].float()
                s = torch.logsumexp(logits[:, self.pos_ids], -1) - torch.logsumexp(logits[:, self.neg_ids], -1)
            else:
                out, s = qlm_scores(model, inputs)
            scores = s[inputs["index"]]
            loss = distill_loss(scores, inputs["z"], inputs["target"], inputs["valid"], self.loss_name,
                                self.temperature)
            if model.training:
                self.tokens_seen += int(inputs["attention_mask"].sum())
            return (loss, out) if return_outputs else loss

    return DistillTrainer


def train_pointwise_distill(dataset, model="smollm2-135m", output_dir="distill-out", *, method: str = "yesno",
                            loss: str = "listwise", temperature: float = 1.0, lora: bool = True, lora_r: int = 16,
                            lora_alpha: int = 32, lora_dropout: float = 0.0, epochs: float = 1.0,
                            max_steps: int = -1, learning_rate: float = 2e-4, groups_per_step: int = 2,
                            grad_accum: int = 1, max_length: int = 512, warmup: float = 0.05,
                            lr_scheduler: str = "linear", use_cpu: bool | None = None, bf16: bool | None = None,
                            seed: int = 0, logging_steps: int = 10, merge: bool = True, save_model: bool = True,
                            callbacks=None, **config) -> TrainResult:
    """Distil a teacher into a pointwise student (see the module docstring). ``dataset``: rows of
    ``pointwise_examples(..., teacher=...)``. Returns a :class:`TrainResult` whose ``tokens`` and
    ``tokens_per_second`` count the prompt tokens trained on."""
    from transformers import TrainingArguments

    if loss not in LOSSES:
        raise RankstackError(f"unknown distillation loss {loss!r}; one of {', '.join(LOSSES)}")
    m, tok = load_model(model)
    pos, neg = score_token_ids(tok, method)
    items = group_examples(dataset, tok, max_length, method)
    if lora:
        from peft import get_peft_model

        m = get_peft_model(m, lora_config(lora_r, lora_alpha, lora_dropout))
    args = TrainingArguments(output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps,
                             learning_rate=learning_rate, per_device_train_batch_size=groups_per_step,
                             gradient_accumulation_steps=grad_accum, warmup_steps=warmup,
                             lr_scheduler_type=lr_scheduler, logging_steps=logging_steps, save_strategy="no",
                             report_to=[], seed=seed, remove_unused_columns=False, disable_tqdm=True,
                             **device_args(use_cpu, bf16), **config)
    trainer = _trainer_class()(model=m, args=args, train_dataset=items, data_collator=_Collator(tok.pad_token_id),
                               callbacks=callbacks, pos_ids=pos, neg_ids=neg, loss_name=loss,
                               temperature=temperature)
    log.info("distilling into %s: %d queries, %d prompts, loss %s, %s", model, len(items),
             sum(len(i["input_ids"]) for i in items), loss, "LoRA" if lora else "full fine-tuning")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    out = (save(trainer, tok, output_dir, merge=merge, base=model if isinstance(model, str) else None)
           if save_model else Path(output_dir))
    return TrainResult(out, seconds, log_history(trainer), len(items), tokens=trainer.tokens_seen)
