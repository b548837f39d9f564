"""Train an MVP reranker (METHODS.md section 8) to reproduce a teacher's ranking.

    from rankstack.training.mvp import mvp_lists, train_mvp
    lists = mvp_lists(run, "runs/teacher.trec", queries, corpus, list_size=16)
    res = train_mvp(lists, model="minilm-l6", output_dir="runs/mvp", time_budget=1500)
    rr = load_reranker("mvp", model=res.output_dir)

**Data.** One example is one query's candidate list: the teacher's top ``top`` candidates and
``list_size - top`` others drawn at random from the rest of its top ``depth`` (seeded per query
and sample; ``samples`` lists per query) **[DEFAULT 16 = 8 + 8]**, in random order, each with
its rank in the teacher's full ranking. No human label is read: a teacher is any run or
``NAME:MODEL`` reranker (:func:`rankstack.training.teacher.load_teacher`).

**Loss.** The listwise KL divergence between the teacher distribution ``softmax(g / T)``, with
``g_i = 1 / rank_i`` and ``T = 0.8``, and the student's ``softmax(s)``
(:func:`rankstack.training.losses.listnet_loss`: the cross-entropy, which is the KL plus the
target's entropy, a constant), plus ``orth_weight`` x the orthogonality loss on each
candidate's view embeddings (:func:`rankstack.training.losses.orthogonality_loss`;
``orth_weight`` **[DEFAULT 0.1]**).

**Training** runs on transformers' ``Trainer`` (AdamW, linear schedule with warm-up; the
randomly initialised anchor module gets its own learning rate, ``anchor_lr`` **[DEFAULT 1e-3]**
vs ``learning_rate`` 3e-5 for the pre-trained encoder); ``time_budget`` (seconds) stops it
cleanly when the wall clock runs out. The model is saved with the data and loss history in
its ``mvp_config.json``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping

import torch
from torch import nn

from rankstack.errors import RankstackError
from rankstack.training.losses import listnet_loss, orthogonality_loss
from rankstack.training.sft import TrainResult
from rankstack.types import Query, Run

log = logging.getLogger(__name__)


def mvp_lists(run: Run, teacher, queries: Mapping[str, Query], corpus, *, depth: int = 100, list_size: int = 16,
              top: int = 8, samples: int = 1, seed: int = 0, qids=None):
    """A ``datasets.Dataset`` of candidate lists with teacher ranks (see the module docstring):
    columns ``qid``, ``query``, ``passages`` (texts), ``ranks`` (1-based, in the teacher's ranking
    of the query's top ``depth``)."""
    from datasets import Dataset

    from rankstack.training.teacher import load_teacher

    if not 1 <= top <= list_size:
        raise RankstackError(f"need 1 <= top <= list_size, got top={top}, list_size={list_size}")
    qids = [q for q in (qids if qids is not None else run) if q in run]
    missing = [q for q in qids if q not in queries]
    if missing:
        raise RankstackError(f"{len(missing)} queries of the run have no text (e.g. {missing[0]!r})")
    sub = Run(name=run.name)
    for q in qids:
        sub[q] = run[q].top(depth)
    ranked = load_teacher(teacher).rank(sub, queries, corpus, depth=depth)
    rows = {"qid": [], "query": [], "passages": [], "ranks": []}
    for q in qids:
        if q not in ranked or len(ranked[q]) < 2:
            continue
        order = ranked[q].docids
        for s in range(samples):
            rng = random.Random(f"{seed}:{q}:{s}")
            rest = order[top:]
            pick = list(range(min(top, len(order)))) + [top + i for i in
                                                        rng.sample(range(len(rest)), min(len(rest), list_size - top))]
            rng.shuffle(pick)
            docs = corpus.get_many([order[i] for i in pick])
            rows["qid"].append(q)
            rows["query"].append(queries[q].text)
            rows["passages"].append([d.full_text for d in docs])
            rows["ranks"].append([i + 1 for i in pick])
    if not rows["qid"]:
        raise RankstackError("no query has two or more teacher-ranked candidates: nothing to train on")
    return Dataset.from_dict(rows)


class MVPObjective(nn.Module):
    """The trainable module ``Trainer`` sees: the MVP model and its loss (listwise KL to the
    teacher ranks + ``orth_weight`` x orthogonality). :meth:`parts` gives the two parts' means
    over the training batches since it was last called."""

    def __init__(self, model, temperature: float = 0.8, orth_weight: float = 0.1):
        super().__init__()
        self.model = model
        self.temperature, self.orth_weight = float(temperature), float(orth_weight)
        self._sums: dict[str, float] = {"kl": 0.0, "orth": 0.0}
        self._n = 0

    def forward(self, input_ids, attention_mask, cand_mask, ranks, token_type_ids=None):
        scores, e = self.model(input_ids, attention_mask, cand_mask, token_type_ids=token_type_ids)
        kl = listnet_loss(scores, ranks=ranks, mask=cand_mask, temperature=self.temperature)
        orth = orthogonality_loss(e, cand_mask)
        if self.training:
            self._sums["kl"] += float(kl.detach())
            self._sums["orth"] += float(orth.detach())
            self._n += 1
        return {"loss": kl + self.orth_weight * orth, "scores": scores}

    def parts(self) -> dict[str, float]:
        out = {k: v / self._n for k, v in self._sums.items()} if self._n else {}
        self._sums, self._n = {"kl": 0.0, "orth": 0.0}, 0
        return out


def collate_lists(tokenize, features: list[dict]) -> dict:
    """Lists of (query, passages, ranks) -> tensors (B, n, L) with a candidate mask; padded
    candidates get rank n + 1 and are masked out."""
    n = max(len(f["passages"]) for f in features)
    queries = [f["query"] for f in features for _ in f["passages"]]
    passages = [p for f in features for p in f["passages"]]
    enc = tokenize(queries, passages)
    length = enc["input_ids"].shape[1]
    b = len(features)
    out = {k: torch.zeros((b, n, length), dtype=v.dtype) for k, v in enc.items()}
    cand_mask = torch.zeros((b, n), dtype=torch.bool)
    ranks = torch.full((b, n), float(n + 1))
    pos = 0
    for i, f in enumerate(features):
        k = len(f["passages"])
        for key, v in enc.items():
            out[key][i, :k] = v[pos: pos + k]
        cand_mask[i, :k] = True
        ranks[i, :k] = torch.tensor(f["ranks"], dtype=torch.float)
        pos += k
    return {**out, "cand_mask": cand_mask, "ranks": ranks}


def train_mvp(dataset, model="minilm-l6", output_dir="mvp-out", *, views: int = 4, max_length: int = 256,
              epochs: float = 1.0, max_steps: int = -1, learning_rate: float = 3e-5, anchor_lr: float = 1e-3,
              batch_size: int = 1, warmup: float = 0.05, temperature: float = 0.8, orth_weight: float = 0.1,
              time_budget: float | None = None, seed: int = 0, use_cpu: bool | None = None, logging_steps: int = 10,
              save_model: bool = True, extra: dict | None = None, callbacks=None, **config) -> TrainResult:
    """Train MVP on a :func:`mvp_lists` dataset, starting from ``model`` (a backbone alias/folder,
    an MVP folder, or a loaded MVP model). Returns where it went, the wall time and the log
    history (``loss``, ``kl``, ``orth`` per logged step)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from rankstack.rerankers.mvp import MVPModel, load_mvp

    for col in ("query", "passages", "ranks"):
        if col not in dataset.column_names:
            raise RankstackError(f"the dataset has no {col!r} column (build it with rankstack.training.mvp.mvp_lists)")
    torch.manual_seed(seed)
    m = model if isinstance(model, MVPModel) else load_mvp(str(model), views=views, max_length=max_length, seed=seed)
    m.train()
    objective = MVPObjective(m, temperature, orth_weight)
    groups = [{"params": [p for p in m.encoder.parameters() if p.requires_grad], "lr": learning_rate},
              {"params": list(m.anchor.parameters()), "lr": anchor_lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    cpu = (not torch.cuda.is_available()) if use_cpu is None else bool(use_cpu)
    args = TrainingArguments(output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps,
                             per_device_train_batch_size=batch_size, learning_rate=learning_rate,
                             warmup_steps=warmup, lr_scheduler_type="linear", logging_steps=logging_steps,
                             save_strategy="no", report_to=[], seed=seed, remove_unused_columns=False,
                             use_cpu=cpu, disable_tqdm=True, dataloader_num_workers=0, **config)

    class Parts(TrainerCallback):
        """Adds the loss parts to the log and stops at the time budget."""

        def __init__(self):
            self.t0 = time.perf_counter()

        def on_log(self, a, state, control, logs=None, **kw):
            if logs is not None and "loss" in logs:
                parts = {k: round(v, 4) for k, v in objective.parts().items()}
                logs.update(parts)  # printed
                if state.log_history and "loss" in state.log_history[-1]:
                    state.log_history[-1].update(parts)  # kept (the trainer appended it already)

        def on_step_end(self, a, state, control, **kw):
            if time_budget and time.perf_counter() - self.t0 > time_budget:
                log.info("MVP training: time budget of %.0f s reached at step %d", time_budget, state.global_step)
                control.should_training_stop = True
            return control

    trainer = Trainer(model=objective, args=args, train_dataset=dataset,
                      data_collator=lambda feats: collate_lists(m.tokenize, feats), optimizers=(optimizer, None),
                      callbacks=[Parts(), *(callbacks or [])])
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    m.eval()
    history = [dict(h) for h in trainer.state.log_history]
    info = {"steps": trainer.state.global_step, "seconds": round(seconds, 1), "lists": len(dataset),
            "temperature": temperature, "orth_weight": orth_weight, "learning_rate": learning_rate,
            "anchor_lr": anchor_lr, "time_budget": time_budget, **(extra or {})}
    out = m.save_pretrained(output_dir, extra=info) if save_model else output_dir
    from pathlib import Path

    return TrainResult(Path(out), seconds, history, len(dataset))
