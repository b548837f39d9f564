"""Cross-encoder students distilled from a teacher's ranking (``train distill --student-kind cross-encoder``).

A sentence-transformers :class:`~sentence_transformers.cross_encoder.CrossEncoder` reads the
query and the passage together, so it can learn more from a teacher's order than a bi-encoder
teacher can express (InPars-light's MiniLM rerankers, Promptagator's reranker). It is trained by
sentence-transformers' own :class:`CrossEncoderTrainer` with its own losses, on rows built here
from the teacher's run over each (synthetic) query's first-stage candidates:

| ``loss`` | rows | target |
|---|---|---|
| ``listnet`` | ``query, docs, labels`` (a list of ``list_size`` candidates) | softmax of the teacher's per-query z-scores / ``temperature`` (ListNet) |
| ``lambda`` | ``query, docs, labels`` | graded labels from the teacher's ranks (3 / 2 / 1 / 0, :data:`~rankstack.training.teacher.RANK_GRADES`), LambdaLoss (NDCG-Loss2++) |
| ``margin_mse`` | ``query, positive, negative_1..k, label`` | the teacher's z-score margins (Hofstätter et al.'s Margin-MSE) |

Each query contributes the teacher's top ``n_top`` candidates and ``list_size - n_top`` drawn
(seeded) from the rest, so every loss sees the same pairs. The trained folder loads back with
``load_reranker("cross_encoder", model=DIR)``.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from rankstack.errors import RankstackError

log = logging.getLogger(__name__)

LOSSES = ("listnet", "lambda", "margin_mse")


def cross_encoder_examples(queries, candidates, teacher, corpus, *, loss: str = "listnet", qids=None,
                           list_size: int = 8, n_top: int = 2, depth: int = 30, temperature: float = 1.0,
                           seed: int = 0):
    """Training rows for :func:`train_cross_encoder` (a ``datasets.Dataset``).

    Args:
        queries: qid -> :class:`~rankstack.types.Query`.
        candidates: the first-stage :class:`~rankstack.types.Run` the teacher ranked.
        teacher: the teacher's :class:`~rankstack.types.Run` over those candidates.
        corpus: a doc store (``get(docid)``).
        loss: one of :data:`LOSSES` (decides the row shape and the target).
        qids: the queries to use (default: every query both runs hold).
        list_size: candidates per query (all losses see the same ones).
        n_top: the teacher's top candidates always in a query's list.
        depth: candidates per query considered (the teacher's top ``depth``).
        temperature: ListNet's target is softmax(z / temperature).
        seed: seeds the draw of the other candidates.

    Returns:
        A ``datasets.Dataset`` in the column layout the loss's sentence-transformers class reads.
    """
    from datasets import Dataset

    from rankstack.training.teacher import grades_from_ranks, zscores

    if loss not in LOSSES:
        raise RankstackError(f"unknown cross-encoder loss {loss!r}; one of {', '.join(LOSSES)}")
    if list_size < 2 or not 1 <= n_top < list_size:
        raise RankstackError(f"need list_size >= 2 and 1 <= n_top < list_size, got {list_size}, {n_top}")
    rng = random.Random(seed)
    rows: list[dict] = []
    for qid in (qids if qids is not None else [q for q in teacher if q in candidates]):
        if qid not in teacher or qid not in queries:
            continue
        ranking = teacher[qid].top(depth)
        if len(ranking) < 2:
            continue
        ranked = ranking.docids
        pick = ranked[:n_top] + rng.sample(ranked[n_top:], min(list_size - n_top, len(ranked) - n_top))
        z = zscores(ranking)
        texts = [corpus.get(d).full_text for d in pick]
        query = queries[qid].text
        if loss == "margin_mse":
            row = {"query": query, "positive": texts[0]}
            row.update({f"negative_{i}": t for i, t in enumerate(texts[1:], 1)})
            row["label"] = [z[pick[0]] - z[d] for d in pick[1:]]
            rows.append(row)
            continue
        if loss == "listnet":
            labels = [z[d] / temperature for d in pick]
        else:
            grades = grades_from_ranks(ranking)
            labels = [float(grades[d]) for d in pick]
        rows.append({"query": query, "docs": texts, "labels": labels})
    if not rows:
        raise RankstackError("no training rows: the teacher run shares no query (with 2+ candidates) with the queries")
    if loss == "margin_mse":  # every row needs the same columns: keep the shortest list
        k = min(len(r) for r in rows) - 3
        rows = [{**{c: r[c] for c in ("query", "positive")}, **{f"negative_{i}": r[f"negative_{i}"] for i in
                 range(1, k + 1)}, "label": r["label"][:k]} for r in rows]
    return Dataset.from_list(rows)


def pair_texts(dataset) -> list[tuple[str, str]]:
    """Every (query, passage) pair the rows of :func:`cross_encoder_examples` train on."""
    out = []
    for row in dataset:
        docs = row["docs"] if "docs" in row else [row["positive"]] + [row[c] for c in row if c.startswith("negative_")]
        out += [(row["query"], d) for d in docs]
    return out


def _loss(model, name: str, mini_batch_size: int | None):
    from sentence_transformers.cross_encoder import losses as L

    if name == "listnet":
        return L.ListNetLoss(model, mini_batch_size=mini_batch_size)
    if name == "lambda":
        return L.LambdaLoss(model, mini_batch_size=mini_batch_size)
    return L.MarginMSELoss(model)


def encoder_path(model: str, kind: str = "cross-encoder") -> str:
    """An encoder student's model: an alias (``minilm-l6``), a folder or a hub id, as a path or id."""
    from rankstack.models import ALIASES

    path = ALIASES[model]() if model in ALIASES else model
    if not (Path(path).is_dir() or "/" in path):
        raise RankstackError(f"{kind} student {model!r}: not a folder, alias ({', '.join(ALIASES)}) or hub id")
    return path


def train_in_bf16(bf16: bool | None) -> bool:
    """``bf16`` as given, or by default: on a GPU, or where the CPU has bf16 instructions."""
    if bf16 is not None:
        return bool(bf16)
    import torch

    from rankstack.hardware import has_bf16

    return torch.cuda.is_available() or has_bf16()


def load_student(model: str = "minilm-l6", max_length: int = 128, seed: int = 0):
    """A :class:`CrossEncoder` to train: a cross-encoder folder as it is, or an encoder folder
    (e.g. the ``minilm-l6`` bi-encoder) with a new one-logit head, seeded."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    path = encoder_path(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return CrossEncoder(path, num_labels=1, max_length=max_length)
        except OSError as e:
            raise RankstackError(f"cannot load cross-encoder student {model!r}: {e}") from e


def train_cross_encoder(dataset, model: str = "minilm-l6", output_dir="ce-out", *, loss: str = "listnet",
                        epochs: float = 1.0, learning_rate: float = 7e-5, batch_size: int = 4,
                        max_length: int = 128, warmup_ratio: float = 0.1, bf16: bool | None = None,
                        seed: int = 0, max_steps: int = -1, logging_steps: int = 20, **config):
    """Train a cross-encoder student with sentence-transformers' ``CrossEncoderTrainer``.

    Args:
        dataset: rows of :func:`cross_encoder_examples` built for the same ``loss``.
        model: the student to start from (see :func:`load_student`).
        output_dir: where the trained model is saved (a folder ``CrossEncoder`` loads).
        loss: one of :data:`LOSSES`.
        epochs: passes over the rows.
        learning_rate: peak learning rate (linear warm-up then decay).
        batch_size: rows (queries) per step; each row holds ``list_size`` pairs.
        max_length: tokens per (query, passage) pair; longer pairs are cut.
        warmup_ratio: share of the steps spent warming up.
        bf16: train in bf16 (default: where the CPU has bf16 instructions, or on a GPU).
        seed: trainer seed (data order, dropout).
        max_steps: stop after this many steps (-1: the epochs decide).
        logging_steps: steps between loss log lines.
        **config: any other ``CrossEncoderTrainingArguments`` field.

    Returns:
        A :class:`~rankstack.training.sft.TrainResult`: folder, seconds, log history, rows and the
        (query, passage) tokens trained on.
    """
    import torch
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    from rankstack.training.sft import TrainResult

    if loss not in LOSSES:
        raise RankstackError(f"unknown cross-encoder loss {loss!r}; one of {', '.join(LOSSES)}")
    bf16 = train_in_bf16(bf16)
    ce = load_student(model, max_length, seed)
    pairs = pair_texts(dataset)
    tokens = sum(len(x) for x in ce.tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation=True,
                                              max_length=max_length)["input_ids"])
    args = CrossEncoderTrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, warmup_ratio=warmup_ratio, logging_steps=logging_steps,
        save_strategy="no", report_to=[], seed=seed, bf16=bool(bf16), disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), dataloader_drop_last=False, **config)
    trainer = CrossEncoderTrainer(model=ce, args=args, train_dataset=dataset,
                                  loss=_loss(ce, loss, mini_batch_size=None))
    log.info("training cross-encoder %s: %d rows, %d pairs, %d tokens, loss %s, %s", model, len(dataset),
             len(pairs), tokens, loss, "bf16" if bf16 else "fp32")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    out = Path(output_dir)
    ce.save_pretrained(str(out))
    per_step = tokens / max(1, -(-len(dataset) // batch_size))  # tokens of one pass / steps of one pass
    return TrainResult(out, seconds, [dict(h) for h in trainer.state.log_history], len(dataset),
                       tokens=int(per_step * trainer.state.global_step))
