"""Bi-encoder students (``train distill --student-kind dense``): a sentence-transformers model, by
default the dense MiniLM teacher itself, fine-tuned on the teacher's listwise labels.

A cross-encoder student starts with a head that knows nothing and needs thousands of queries to
learn one; the bi-encoder starts where the teacher is. Trained gently (a small learning rate, one
pass) on an ensemble teacher's distribution (say ``dense:minilm-l6+bm25``), it moves toward the
ensemble from the teacher's own ranking rather than from scratch. The loss is
sentence-transformers' own ``DistillKLDivLoss`` (KL divergence between the teacher's softmax over
a query's list and the student's over its similarities / ``student_temperature``), the trainer its
``SentenceTransformerTrainer``. The rows are :func:`~rankstack.training.cross_encoder.cross_encoder_examples`'
``listnet`` rows (``query, docs, labels``: the teacher's per-query z-scores). The trained folder
loads back with ``load_reranker("dense", model=DIR)``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rankstack.errors import RankstackError

log = logging.getLogger(__name__)


def dense_columns(dataset):
    """``listnet`` rows (``query, docs, labels``) as ``DistillKLDivLoss`` reads them: ``query``,
    ``doc_0`` .. ``doc_{n-1}`` (n: the shortest list), ``label`` (the teacher's scores)."""
    from datasets import Dataset

    if "docs" not in dataset.column_names or "labels" not in dataset.column_names:
        raise RankstackError("a dense student trains on listnet rows (query, docs, labels): --loss listnet")
    rows = list(dataset)
    n = min(len(r["docs"]) for r in rows)
    if n < 2:
        raise RankstackError("a dense student needs at least 2 candidates per row")
    cols: dict = {"query": [r["query"] for r in rows]}
    for i in range(n):
        cols[f"doc_{i}"] = [r["docs"][i] for r in rows]
    cols["label"] = [list(r["labels"][:n]) for r in rows]
    return Dataset.from_dict(cols)


def train_dense_student(dataset, model: str = "minilm-l6", output_dir="dense-out", *, epochs: float = 1.0,
                        learning_rate: float = 2e-5, batch_size: int = 4, max_length: int = 128,
                        student_temperature: float = 0.05, warmup_ratio: float = 0.1, bf16: bool | None = None,
                        seed: int = 0, max_steps: int = -1, logging_steps: int = 20, **config):
    """Fine-tune a bi-encoder on ``listnet`` rows with ``DistillKLDivLoss``.

    Args:
        dataset: :func:`~rankstack.training.cross_encoder.cross_encoder_examples` rows, ``loss="listnet"``.
        model: the student to start from: an alias (``minilm-l6``), a folder or a hub id.
        output_dir: where the trained model is saved (a folder ``SentenceTransformer`` loads).
        epochs: passes over the rows.
        learning_rate: peak learning rate (fine-tuning a trained encoder: keep it small).
        batch_size: rows (queries) per step.
        max_length: tokens per text (query or passage) in training; the saved model keeps its own
            ``max_seq_length`` for inference (the teacher's view of a passage).
        student_temperature: the student's cosine similarities are divided by it before the softmax.
        warmup_ratio: share of the steps spent warming up.
        bf16: train in bf16 (default: where the CPU has bf16 instructions, or on a GPU).
        seed: trainer seed.
        max_steps: stop after this many steps (-1: the epochs decide).
        logging_steps: steps between loss log lines.
        **config: any other ``SentenceTransformerTrainingArguments`` field.

    Returns:
        A :class:`~rankstack.training.sft.TrainResult`.
    """
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    from rankstack.training.cross_encoder import encoder_path, train_in_bf16
    from rankstack.training.sft import TrainResult

    bf16 = train_in_bf16(bf16)
    path = encoder_path(model, "dense")
    data = dense_columns(dataset)
    st = SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu")
    own_length, st.max_seq_length = st.max_seq_length, max_length  # trained on max_length; runs at its own
    texts = [t for c in data.column_names if c != "label" for t in data[c]]
    tokens = sum(min(max_length, len(x)) for x in st.tokenizer(texts, truncation=False)["input_ids"])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, warmup_ratio=warmup_ratio, logging_steps=logging_steps,
        save_strategy="no", report_to=[], seed=seed, bf16=bool(bf16), disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), dataloader_drop_last=False, **config)
    loss = DistillKLDivLoss(st, student_temperature=student_temperature, teacher_temperature=1.0)
    trainer = SentenceTransformerTrainer(model=st, args=args, train_dataset=data, loss=loss)
    log.info("training dense student %s: %d rows, %d texts, %d tokens, %s", model, len(data), len(texts), tokens,
             "bf16" if bf16 else "fp32")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    out = Path(output_dir)
    st.max_seq_length = own_length
    st.save(str(out))
    per_step = tokens / max(1, -(-len(data) // batch_size))
    return TrainResult(out, seconds, [dict(h) for h in trainer.state.log_history], len(data),
                       tokens=int(per_step * trainer.state.global_step))
