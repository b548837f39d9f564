"""The label-free distillation recipe as one resumable pipeline (``rankstack train distill``).

    corpus --(LLM)--> synthetic queries --(BM25)--> candidates --(teacher)--> teacher run
           --(consistency filter)--> kept queries --(builder)--> examples --(trainer)--> student

Every step writes its output into ``out_dir`` and is skipped when that file exists, so a step can
be rerun (delete its file) or swapped (put your own file there: a teacher run from a 70B model,
queries written by another generator) and the rest follows:

| file | step |
|---|---|
| ``generated.tsv``, ``generated.qrels``, ``generated.dropped.tsv`` | queries written for sampled passages; pseudo-qrels (source passage = relevant); drops with their reason |
| ``candidates.trec`` | BM25 (bm25s) top ``depth`` of every generated query |
| ``teacher.trec`` | the teacher's run over those candidates |
| ``queries.tsv``, ``qrels.txt`` | what the consistency filter kept, and their pseudo-qrels |
| ``examples.jsonl`` | the training rows (pointwise groups or FIRST windows with the teacher's order) |
| ``model/`` | the trained student (``load_reranker("cross_encoder", model=DIR/model)``, or the LLM student's paradigm) |
| ``round2/`` | with ``rounds=2``: the same files for a fresh passage sample, taught by the round-1 student fused with the teacher |
| ``summary.json`` | counts, keep-rate, each step's seconds, tokens and tokens/s, the options used |

Two kinds of student (``student_kind``):

- ``cross-encoder`` (default): a sentence-transformers CrossEncoder started from an encoder
  (``minilm-l6``) and trained with sentence-transformers' CrossEncoderTrainer on the teacher's
  per-query scores (``loss``: ``listnet``, ``lambda`` or ``margin_mse``;
  :mod:`rankstack.training.cross_encoder`). Held-out generated queries (``val_queries``, drawn
  before the filter) measure, label-free, how often BM25, the teacher and the student put the
  passage a query was written from in their top 10 (MRR@10).
- ``dense``: a bi-encoder, by default the dense MiniLM teacher itself, fine-tuned on the same
  ``listnet`` rows with sentence-transformers' ``DistillKLDivLoss`` (:mod:`rankstack.training.dense_student`);
  it starts from the teacher's ranking instead of a new head. Loads with ``load_reranker("dense", model=DIR/model)``.
- ``llm``: a causal LM trained as a pointwise (yes/no, QLM, ...) or FIRST reranker, LoRA.

No query or judgement of a test collection is used: the queries are written from the corpus's
passages and their labels are the teacher's.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from rankstack.errors import RankstackError
from rankstack.training.lazy import LazyBackend, LazyTeacher
from rankstack.rerankers.registry import save_options

log = logging.getLogger(__name__)

PARADIGMS = ("pointwise", "first")
STUDENT_KINDS = ("cross-encoder", "dense", "llm")
#: each kind's default student, generator, loss and length cap
KIND_DEFAULTS = {"cross-encoder": {"student": "minilm-l6", "loss": "listnet", "max_length": 128, "learning_rate": 7e-5},
                 "dense": {"student": "minilm-l6", "loss": "listnet", "max_length": 128, "learning_rate": 2e-5},
                 "llm": {"student": "smollm2-135m", "loss": "listwise", "max_length": 1536, "learning_rate": 2e-4}}


@dataclass
class DistillConfig:
    corpus: str
    teacher: str = "dense:minilm-l6"
    teacher_weights: list[float] | None = None  # an ensemble teacher's weights (default equal)
    student_kind: str = "cross-encoder"
    student: str | None = None  # default: minilm-l6 (cross-encoder), smollm2-135m (llm)
    generator: str | None = None  # default: smollm2-135m, or an llm student itself
    paradigm: str = "pointwise"
    n_queries: int = 500  # passages sampled to write queries for (the filter keeps a share)
    samples: int = 1  # queries drawn per passage (one shared prefill); the distinct usable ones are kept
    gen_passage_tokens: int = 128  # the generator's view of a passage
    queries: str | None = None  # given training queries (topics file or dataset): no generation, no filter
    candidates: str | None = None  # with queries: their first-stage run (file or dataset)
    seed: int = 0
    depth: int = 30  # BM25 candidates per synthetic query
    keep_top: int = 3  # consistency filter: the source must be in the teacher's top keep_top
    max_doc_tokens: int = 96  # passages cut for the student (and the generator's view)
    # pointwise
    method: str = "yesno"
    loss: str | None = None  # default: listnet (cross-encoder), listwise (llm)
    group_size: int = 8  # candidates per query in a training row
    n_top: int = 2
    # first
    window: int = 20
    # training
    epochs: float = 1.0
    learning_rate: float | None = None  # default: 7e-5 (cross-encoder), 2e-5 (dense), 2e-4 (llm, LoRA)
    lora: bool = True
    lora_r: int = 16
    groups_per_step: int = 2
    batch_size: int = 2  # first: windows per step
    max_length: int | None = None  # tokens per training prompt (llm) or (query, passage) pair (cross-encoder)
    batch_size_ce: int = 4  # cross-encoder: queries per step
    bf16: bool | None = None  # None: by the CPU (bf16 where avx512_bf16/AMX), bf16 on CUDA
    val_queries: int = 0  # queries held out of training to validate on, label-free (see the module docstring)
    rounds: int = 1  # 2: a second round taught by the round-1 student fused with the teacher
    token_budget: int | None = None  # train on whole queries (seeded order) until their prompts hold this many tokens
    threads: int | None = None
    gen_batch_size: int = 32
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.student_kind not in STUDENT_KINDS:
            raise RankstackError(f"student kind must be one of {STUDENT_KINDS}, got {self.student_kind!r}")
        if self.rounds not in (1, 2):
            raise RankstackError(f"rounds must be 1 or 2, got {self.rounds}")
        for key, value in KIND_DEFAULTS[self.student_kind].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.generator is None:
            self.generator = self.student if self.student_kind == "llm" else "smollm2-135m"
        if self.student_kind == "dense" and self.loss != "listnet":
            raise RankstackError(f"a dense student learns the teacher's listwise distribution (DistillKLDivLoss): "
                                 f"--loss listnet, not {self.loss!r}")


def _bf16_default() -> bool:
    import torch

    if torch.cuda.is_available():
        return True
    from rankstack.hardware import default_cpu_dtype

    return default_cpu_dtype() == "bfloat16"


def run_distill(cfg: DistillConfig, out_dir, progress: bool = True) -> dict:
    """Run (or resume) the recipe into ``out_dir``; returns the summary it also writes.

    Args:
        cfg: the recipe's options.
        out_dir: the folder every step writes its file into (see the module docstring).
        progress: tqdm bars for the long steps.

    Returns:
        The summary (``summary.json``): counts, keep-rate, each step's seconds, tokens/s, options.
    """
    import torch

    from rankstack.data.datasets import resolve_corpus

    if cfg.student_kind == "llm" and cfg.paradigm not in PARADIGMS:
        raise RankstackError(f"train distill: paradigm must be one of {PARADIGMS}, got {cfg.paradigm!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    summary: dict = {"config": asdict(cfg)}
    started = (time.perf_counter(), time.process_time())
    corpus = resolve_corpus(cfg.corpus)
    if len(corpus) == 0:
        raise RankstackError(f"the corpus {cfg.corpus!r} is empty")
    from rankstack.training.teacher import load_teacher

    if (out / "teacher.trec").exists():  # a resumed run: the teacher loads only if a later step asks for it
        teacher = LazyTeacher(lambda: load_teacher(cfg.teacher, weights=cfg.teacher_weights))
    else:
        teacher = load_teacher(cfg.teacher, weights=cfg.teacher_weights)  # a bad spec fails before any model runs
    gen = LazyBackend(cfg.generator, cfg.gen_batch_size)
    if cfg.queries:
        kept = _given(cfg, corpus, out, teacher)
        summary["filter"] = {"queries": len(kept.kept.queries), "kept": len(kept.kept.queries), "keep_rate": 1.0,
                             "given": cfg.queries}
        return _finish(cfg, kept, [], corpus, gen, out, summary)
    syn = _generate(cfg, corpus, out, gen, summary, progress, seed=cfg.seed)
    val = _held_out(cfg, syn)
    kept, cands, teacher_run = _teach(cfg, syn, corpus, out, teacher, summary, progress, exclude=set(val))
    summary["wall_seconds_this_call"] = round(time.perf_counter() - started[0], 1)
    summary["cpu_seconds_this_call"] = round(time.process_time() - started[1], 1)
    summary = _finish(cfg, kept, val, corpus, gen, out, summary, full=(syn, cands, teacher_run))
    summary["wall_seconds_this_call"] = round(time.perf_counter() - started[0], 1)
    summary["cpu_seconds_this_call"] = round(time.process_time() - started[1], 1)
    _write_summary(out, summary)
    if cfg.rounds == 2:
        from rankstack.training.ce_recipe import second_round

        summary["round2"] = second_round(cfg, corpus, out, teacher, used={syn.source[q] for q in syn.source},
                                         steps=STEPS, progress=progress)
        _write_summary(out, summary)
    return summary


def _generate(cfg: DistillConfig, corpus, out: Path, backend, summary: dict, progress: bool, seed: int,
              exclude: set[str] | None = None):
    """Step 1: synthetic queries for ``cfg.n_queries`` sampled passages (``generated.tsv``)."""
    from rankstack.rerankers.cache import ScoreCache, default_cache_path
    from rankstack.training import synthetic as S

    gen_topics, gen_qrels = out / "generated.tsv", out / "generated.qrels"
    if gen_topics.exists() and gen_qrels.exists():
        syn = S.read_synthetic(gen_topics, gen_qrels)
        log.info("step 1: %d generated queries read from %s", len(syn.queries), gen_topics)
        return syn
    t0 = time.perf_counter()
    syn = S.generate_queries(corpus, backend(), cfg.n_queries, seed=seed, samples=cfg.samples, keep=cfg.samples,
                             max_passage_tokens=cfg.gen_passage_tokens, cache=ScoreCache(default_cache_path()),
                             progress=progress, exclude=exclude, chunk_size=2 * cfg.gen_batch_size)
    S.write_synthetic(syn, gen_topics, gen_qrels, out / "generated.dropped.tsv")
    secs = time.perf_counter() - t0
    summary["generation"] = {**dict(syn.stats), "seconds": round(secs, 1), "generator": cfg.generator,
                             **_generation_speed(syn.stats, secs, backend())}
    return syn


def _generation_speed(stats, seconds: float, backend) -> dict:
    """Tokens/s through the generator and the share of the CPU's fp32 FLOP peak they amount to
    (2 x non-embedding parameters per token, plus the output layer per decoded token)."""
    from rankstack.hardware import peak_flops

    ran = stats.get("prefill_tokens", 0) + stats.get("decoded_tokens", 0)
    if not ran or seconds <= 0:
        return {}
    model = backend.model
    emb = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - emb
    flops = 2 * body * ran + 2 * emb * stats.get("decoded_tokens", 0)
    peak = peak_flops(str(getattr(backend, "dtype", "float32")).replace("torch.", ""))
    return {"tokens_per_second": round(ran / seconds, 1),
            "generated_tokens_per_second": round(stats.get("decoded_tokens", 0) / seconds, 1),
            "gflops": round(flops / seconds / 1e9, 1),
            **({"peak_gflops": round(peak / 1e9, 1), "peak_fraction": round(flops / seconds / peak, 3)} if peak else {})}


def _held_out(cfg: DistillConfig, syn) -> list[str]:
    """Generated queries kept out of training to validate on (cross-encoder students; drawn before
    the filter, seeded); the llm path holds out kept queries instead (:func:`_finish`)."""
    import random

    if cfg.student_kind == "llm" or not cfg.val_queries:
        return []
    qids = sorted(syn.queries)
    if cfg.val_queries >= len(qids):
        raise RankstackError(f"val_queries={cfg.val_queries} leaves no generated query to train on ({len(qids)})")
    return sorted(random.Random(cfg.seed).sample(qids, cfg.val_queries))


def _teach(cfg: DistillConfig, syn, corpus, out: Path, teacher, summary: dict, progress: bool,
           exclude: set[str] = frozenset(), key: str = "teacher_seconds"):
    """Steps 2-4: BM25 candidates, the teacher's run over them, the consistency filter (``exclude``:
    held-out queries, ranked but never kept for training). Returns the filter's result and the
    candidates and teacher runs of every generated query."""
    from rankstack.data.trec import read_run, write_run
    from rankstack.training import synthetic as S

    cand_path, teacher_path = out / "candidates.trec", out / "teacher.trec"
    if cand_path.exists() and teacher_path.exists():
        cands, teacher_run = read_run(cand_path), read_run(teacher_path)
    else:
        from rankstack.retrieval.bm25 import BM25Retriever

        t0 = time.perf_counter()
        cands, teacher_run = S.candidate_runs(syn, BM25Retriever.from_corpus(corpus, show_progress=progress),
                                              teacher, corpus, depth=cfg.depth)
        write_run(cands, cand_path)
        write_run(teacher_run, teacher_path)
        summary[key] = round(time.perf_counter() - t0, 1)
    train = syn.subset([q for q in syn.queries if q not in exclude])
    kept = S.consistency_filter(train, cands, teacher_run, keep_top=cfg.keep_top)
    S.write_synthetic(kept.kept, out / "queries.tsv", out / "qrels.txt")
    summary["filter"] = {**dict(kept.stats), "keep_rate": round(kept.keep_rate, 4)}
    return kept, cands, teacher_run


def _write_summary(out: Path, summary: dict) -> dict:
    prev = out / "summary.json"
    if prev.exists():  # keep what earlier (partial) runs measured
        old = json.loads(prev.read_text())
        summary = {**old, **{k: v for k, v in summary.items() if k != "config"}, "config": summary["config"]}
    prev.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _given(cfg: DistillConfig, corpus, out: Path, teacher):
    """Steps 1-4 for given queries and candidates (e.g. a collection's own queries with a ``qrels:``
    teacher: the supervised variant): the teacher ranks the candidates, nothing is filtered."""
    from rankstack.data.datasets import resolve_queries, resolve_run
    from rankstack.data.trec import read_run, write_run
    from rankstack.training.synthetic import FilterResult, SyntheticQueries

    if not cfg.candidates:
        raise RankstackError("given --queries need --candidates (their first-stage run)")
    queries = resolve_queries(cfg.queries)
    cands = resolve_run(cfg.candidates).top(cfg.depth)
    cands = type(cands)((r for q, r in cands.items() if q in queries), name=cands.name)
    teacher_path = out / "teacher.trec"
    if teacher_path.exists():
        teacher_run = read_run(teacher_path)
    else:
        teacher_run = teacher.rank(cands, queries, corpus, depth=cfg.depth)
        write_run(teacher_run, teacher_path)
    write_run(cands, out / "candidates.trec")
    qs = {q: queries[q] for q in teacher_run}
    return FilterResult(SyntheticQueries(qs, {}), cands, teacher_run, Counter(queries=len(qs), kept=len(qs)))


def _finish(cfg: DistillConfig, kept, val: list[str], corpus, backend, out: Path, summary: dict,
            full=None) -> dict:
    """Steps 5-6: examples from the kept queries and the teacher's run, then the student (and the
    label-free validation). ``val``: held-out generated queries (cross-encoder students);
    ``full``: (generated queries, candidates, teacher run) of every generated query."""
    if cfg.student_kind != "llm":
        from rankstack.training.ce_recipe import finish_cross_encoder

        summary.update(finish_cross_encoder(cfg, kept, val, corpus, out, full))
        return _write_summary(out, summary)
    val = sorted(kept.kept.queries)[-cfg.val_queries:] if cfg.val_queries else []
    if val and len(val) >= len(kept.kept.queries):
        raise RankstackError(f"val_queries={cfg.val_queries} leaves no query to train on")
    # 5. examples
    ex_path = out / "examples.jsonl"
    if ex_path.exists():
        from datasets import Dataset

        ds = Dataset.from_json(str(ex_path))
    else:
        train_qids = [q for q in kept.kept.queries if q not in set(val)]
        ds = _examples(cfg, kept, corpus, backend(), train_qids)
        if cfg.token_budget:
            ds = _within_budget(ds, backend(), cfg.token_budget, cfg.seed)
        ds.to_json(str(ex_path))
    summary["examples"] = len(ds)
    # 6. train
    model_dir = out / "model"
    if (model_dir / "config.json").exists():
        log.info("step 6: a trained model is already in %s", model_dir)
    else:
        summary["training"] = _train(cfg, ds, model_dir)
        save_options(model_dir, cfg.paradigm, _reranker_options(cfg))
    if val and "validation" not in summary:
        summary["validation"] = _validate(cfg, kept, val, corpus, model_dir)
    return _write_summary(out, summary)


def _examples(cfg: DistillConfig, kept, corpus, backend, qids):
    from rankstack.training.examples import first_examples, pointwise_examples

    if cfg.paradigm == "pointwise":
        return pointwise_examples(kept.kept.queries, None, kept.candidates, corpus, method=cfg.method,
                                  backend=backend, teacher=kept.teacher, qids=qids, group_size=cfg.group_size,
                                  n_top=cfg.n_top, depth=cfg.depth, seed=cfg.seed, max_doc_tokens=cfg.max_doc_tokens)
    return first_examples(kept.kept.queries, None, kept.candidates, corpus, backend=backend, teacher=kept.teacher,
                          qids=qids, window=cfg.window, step=cfg.window, depth=cfg.window, seed=cfg.seed,
                          max_passage_tokens=cfg.max_doc_tokens)


def _within_budget(ds, backend, budget: int, seed: int):
    """Whole queries, in a seeded order, while their rendered prompts (and targets) fit ``budget``
    tokens: on a CPU, training time is set by tokens, not by examples."""
    import random

    from rankstack.training.examples import prompt_from_row

    per_q: dict[str, int] = {}
    for row in ds:
        n = len(backend.encode(prompt_from_row(row))) + backend.count_tokens(row.get("completion") or "")
        per_q[row["qid"]] = per_q.get(row["qid"], 0) + n
    order = sorted(per_q)
    random.Random(seed).shuffle(order)
    keep, used = set(), 0
    for q in order:
        if used + per_q[q] > budget and keep:
            break
        keep.add(q)
        used += per_q[q]
    log.info("token budget %d: %d of %d queries, %d tokens", budget, len(keep), len(per_q), used)
    return ds.filter(lambda r: r["qid"] in keep)


def _reranker_options(cfg: DistillConfig) -> dict:
    """The options the student is trained with, which it should be run with."""
    if cfg.paradigm == "pointwise":
        return {"method": cfg.method, "max_doc_tokens": cfg.max_doc_tokens}
    return {"max_passage_tokens": cfg.max_doc_tokens, "window": cfg.window}


def _validate(cfg: DistillConfig, kept, val: list[str], corpus, model_dir: Path) -> dict:
    """Label-free validation on held-out synthetic queries: the student (and the untrained model)
    rerank their candidates; nDCG@10 against grades from the teacher's ranks and MRR@10 of the
    source passage. Nothing of a test collection is read."""
    from rankstack.rerankers import load_reranker
    from rankstack.training.teacher import teacher_qrels
    from rankstack.types import Run

    depth = cfg.depth if cfg.paradigm == "pointwise" else cfg.window
    cands = Run((kept.candidates[q].top(depth) for q in val), name="bm25")
    grades = teacher_qrels(Run(kept.teacher[q] for q in val))
    source = {q: {kept.kept.source[q]: 1} for q in val if q in kept.kept.source}  # none for given queries
    opts = _reranker_options(cfg)
    out = {"queries": len(val), "depth": depth}
    for name, model in (("untrained", cfg.student), ("student", str(model_dir))):
        rr = load_reranker(cfg.paradigm, model=model, backend_options={"dtype": "float32"}, progress=False, **opts)
        run = rr.rerank_run(cands, kept.kept.queries, corpus, depth=depth)
        out[name] = agreement(run, grades, source)
    out["first_stage"] = agreement(cands, grades, source)
    log.info("validation on %d held-out synthetic queries: %s", len(val), out)
    return out


def _train(cfg: DistillConfig, ds, model_dir: Path) -> dict:
    bf16 = _bf16_default() if cfg.bf16 is None else cfg.bf16
    if cfg.paradigm == "pointwise":
        from rankstack.training.distill import train_pointwise_distill

        res = train_pointwise_distill(ds, model=cfg.student, output_dir=str(model_dir), method=cfg.method,
                                      loss=cfg.loss, lora=cfg.lora, lora_r=cfg.lora_r, lora_alpha=2 * cfg.lora_r,
                                      epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                      groups_per_step=cfg.groups_per_step, max_length=cfg.max_length, bf16=bf16,
                                      seed=cfg.seed, **cfg.extra)
    else:
        from rankstack.training.sft import train_sft

        res = train_sft(ds, model=cfg.student, output_dir=str(model_dir), loss="first", lora=cfg.lora,
                        lora_r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, epochs=cfg.epochs,
                        learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, max_length=cfg.max_length,
                        bf16=bf16, seed=cfg.seed, **cfg.extra)
    losses = res.losses()
    return {"seconds": round(res.seconds, 1), "examples": res.examples, "tokens": res.tokens,
            "tokens_per_second": round(res.tokens_per_second, 1), "bf16": bf16,
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}


def agreement(run, grades, source) -> dict:
    """How far a run agrees with the teacher on held-out queries (the label-free validation metric).

    Args:
        run: the run to judge (the student's, the untrained model's, the first stage's).
        grades: pseudo-qrels from the teacher's ranks (:func:`rankstack.training.teacher.teacher_qrels`).
        source: ``{qid: {source passage: 1}}`` of the synthetic queries (empty for given queries).

    Returns:
        ``ndcg10_vs_teacher`` (nDCG@10 against ``grades``) and, with ``source``, ``mrr10_source``
        (MRR@10 of each query's source passage), both rounded to 4 digits.
    """
    from rankstack.eval import evaluate

    out = {"ndcg10_vs_teacher": round(evaluate(run, grades, ["nDCG@10"])["nDCG@10"], 4)}
    if source:
        out["mrr10_source"] = round(evaluate(run, source, ["RR@10"])["RR@10"], 4)
    return out


#: the recipe's steps, as :func:`rankstack.training.ce_recipe.second_round` reruns them
STEPS = SimpleNamespace(backend=LazyBackend, generate=_generate, held_out=_held_out, teach=_teach,
                        write_summary=_write_summary)
