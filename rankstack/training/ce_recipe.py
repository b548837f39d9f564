"""The encoder-student steps of ``rankstack train distill`` (``student_kind="cross-encoder"`` or ``"dense"``).

    kept queries + the teacher's run --> examples.jsonl --(CrossEncoderTrainer | SentenceTransformerTrainer)--> model/
    held-out generated queries       --> validation (MRR@10 of the source passage: BM25, teacher, student)
    rounds=2: fresh passages --> queries --> BM25 --> teacher = round-1 student (+) teacher --> round2/model

Round 2 follows the self-training idea of InPars / Promptagator rounds: the student, fused with
the teacher (z-scores, equal weights), labels a fresh sample of passages' queries, and the
round-1 student keeps training on them. Its files sit in ``OUT/round2/`` with the same names.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


#: the reranker each encoder student kind loads as
RERANKER = {"cross-encoder": "cross_encoder", "dense": "dense"}


def reranker_options(cfg) -> dict:
    """How the student is run: a cross-encoder at the pair length it was trained on; a bi-encoder at
    its own ``max_seq_length`` (the teacher's view of a passage)."""
    return {} if cfg.student_kind == "dense" else {"max_length": cfg.max_length}  # dense: the encoder's own


def _train(cfg, ds, init: str, model_dir: Path):
    if cfg.student_kind == "dense":
        from rankstack.training.dense_student import train_dense_student

        return train_dense_student(ds, model=init, output_dir=str(model_dir), epochs=cfg.epochs,
                                   learning_rate=cfg.learning_rate, batch_size=cfg.batch_size_ce,
                                   max_length=cfg.max_length, bf16=cfg.bf16, seed=cfg.seed, **cfg.extra)
    from rankstack.training.cross_encoder import train_cross_encoder

    return train_cross_encoder(ds, model=init, output_dir=str(model_dir), loss=cfg.loss, epochs=cfg.epochs,
                               learning_rate=cfg.learning_rate, batch_size=cfg.batch_size_ce,
                               max_length=cfg.max_length, bf16=cfg.bf16, seed=cfg.seed, **cfg.extra)


def finish_cross_encoder(cfg, kept, val: list[str], corpus, out: Path, full, init: str | None = None) -> dict:
    """Examples, training and validation of an encoder student (cross-encoder or dense) into ``out``.

    Args:
        cfg: the recipe's :class:`~rankstack.training.pipeline.DistillConfig`.
        kept: the consistency filter's result (the training queries and the teacher's run).
        val: held-out generated queries (validated on, never trained on).
        corpus: the doc store.
        out: the recipe's folder (``examples.jsonl`` and ``model/`` go there).
        full: (generated queries, candidates, teacher run) of every generated query, or None.
        init: the model to start from (default ``cfg.student``; round 2: the round-1 student).

    Returns:
        The summary entries: ``examples``, ``pairs``, ``training``, ``validation``.
    """
    from datasets import Dataset

    from rankstack.rerankers.registry import save_options
    from rankstack.training.cross_encoder import cross_encoder_examples, pair_texts

    res: dict = {}
    ex_path = out / "examples.jsonl"
    if ex_path.exists():
        ds = Dataset.from_json(str(ex_path))
    else:
        ds = cross_encoder_examples(kept.kept.queries, kept.candidates, kept.teacher, corpus, loss=cfg.loss,
                                    list_size=cfg.group_size, n_top=cfg.n_top, depth=cfg.depth, seed=cfg.seed)
        ds.to_json(str(ex_path))
    res["examples"], res["pairs"] = len(ds), len(pair_texts(ds))
    model_dir = out / "model"
    if (model_dir / "config.json").exists():
        log.info("a trained student is already in %s", model_dir)
    else:
        t = _train(cfg, ds, init or cfg.student, model_dir)
        losses = t.losses()
        res["training"] = {"seconds": round(t.seconds, 1), "rows": t.examples, "tokens": t.tokens,
                           "tokens_per_second": round(t.tokens_per_second, 1),
                           "pairs_per_second": round(res["pairs"] * cfg.epochs / t.seconds, 1) if t.seconds else None,
                           "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}
        save_options(model_dir, RERANKER[cfg.student_kind], reranker_options(cfg))
    if val and full is not None:
        t0 = time.perf_counter()
        res["validation"] = validate(val, full, corpus, model_dir, RERANKER[cfg.student_kind])
        res["validation"]["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def validate(val: list[str], full, corpus, model_dir: Path, reranker: str = "cross_encoder") -> dict:
    """Label-free validation on held-out generated queries: MRR@10 of the passage each was written
    from, among its BM25 candidates, for BM25, the teacher and the student (and the student's
    nDCG@10 against grades from the teacher's ranks). No test collection is read."""
    from rankstack.eval import evaluate
    from rankstack.rerankers import load_reranker
    from rankstack.training.teacher import teacher_qrels
    from rankstack.types import Run

    syn, cands, teacher = full
    qids = [q for q in val if q in cands and q in teacher]
    source = {q: {syn.source[q]: 1} for q in qids}
    first = Run(cands[q] for q in qids)
    rr = load_reranker(reranker, model=str(model_dir), progress=False, cache=False)
    student = rr.rerank_run(first, syn.queries, corpus, depth=max(len(first[q]) for q in qids))
    out = {"queries": len(qids)}
    for name, run in (("first_stage", first), ("teacher", Run(teacher[q] for q in qids)), ("student", student)):
        out[f"{name}_mrr10_source"] = round(evaluate(run, source, ["RR@10"])["RR@10"], 4)
    out["student_ndcg10_vs_teacher"] = round(evaluate(student, teacher_qrels(Run(teacher[q] for q in qids)),
                                                      ["nDCG@10"])["nDCG@10"], 4)
    log.info("validation on %d held-out generated queries: %s", len(qids), out)
    return out


def second_round(cfg, corpus, out: Path, teacher, used: set[str], steps, progress: bool = True) -> dict:
    """Round 2 into ``out/round2``: queries for ``cfg.n_queries`` passages not sampled in round 1,
    taught by the round-1 student fused with the teacher; the round-1 student trains on them.

    Args:
        cfg: the recipe's ``DistillConfig``.
        corpus: the corpus the queries are generated from.
        out: round 1's folder (its ``model`` is the round-1 student).
        teacher: round 1's teacher.
        used: passages round 1 sampled (round 2 draws others).
        steps: the recipe's steps (``rankstack.training.pipeline.STEPS``: ``backend``, ``generate``,
            ``held_out``, ``teach``, ``write_summary``), passed in so this module needs no import of it.
        progress: progress bars.

    Returns:
        Round 2's summary (``out/round2/summary.json``).
    """
    from rankstack.rerankers import load_reranker
    from rankstack.training.teacher import EnsembleTeacher, RerankerTeacher

    r2 = out / "round2"
    r2.mkdir(exist_ok=True)
    summary: dict = {}
    gen = steps.backend(cfg.generator, cfg.gen_batch_size)
    syn = steps.generate(cfg, corpus, r2, gen, summary, progress, seed=cfg.seed + 1, exclude=used)
    val = steps.held_out(cfg, syn)
    student = RerankerTeacher(load_reranker(RERANKER[cfg.student_kind], model=str(out / "model"), progress=progress),
                              name="round1-student")
    fused = EnsembleTeacher([student, teacher], [0.5, 0.5], name=f"round1-student+{teacher.name}")
    kept, cands, teacher_run = steps.teach(cfg, syn, corpus, r2, fused, summary, progress, exclude=set(val))
    summary.update(finish_cross_encoder(cfg, kept, val, corpus, r2, (syn, cands, teacher_run),
                                        init=str(out / "model")))
    summary["teacher"] = fused.name
    return steps.write_summary(r2, {"config": {"round": 2}, **summary})
