"""The main job, ``rankstack demo`` (what ``make demo`` runs): BM25 -> rerankers -> one nDCG table."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


#: the demo's rows; ``student`` joins them when the cache holds the demo student (training it takes
#: longer than the demo's budget on 2 cores: ``rankstack demo --rerankers student`` makes it once)
DEFAULT_RERANKERS = "dense:minilm-l6,pointwise,pointwise-qlm,first"


def add_parsers(sub) -> None:
    p = sub.add_parser("demo", help="the main job: BM25 -> rerank with a small LLM -> nDCG table")
    p.add_argument("--dataset", default="dl19")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--rerankers", default=None,
                   help="comma-separated registry names, NAME:MODEL for a reranker with its own model, "
                        "pointwise-METHOD for a pointwise method (pointwise-qlm: query likelihood), student "
                        "(the label-free cross-encoder the recipe trains on the dataset's corpus, once, into the "
                        "cache; student:DIR for your own); each also shown fused with BM25, w=0.8 z-score; the "
                        f"others run --model (default: {DEFAULT_RERANKERS}, and student when the cache holds it)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the cores free at start)")
    p.add_argument("--queries-limit", type=int, default=None, help="only the first N judged queries (a quick look)")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--save-runs", default=None, metavar="DIR",
                   help="write each row's run to DIR (TREC + RUN.meta.json), e.g. for rankstack report")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """BM25 (the dataset's run, or bm25s over its corpus) -> rerankers -> one nDCG table."""
    from rankstack.data.datasets import load_dataset
    from rankstack.errors import UsageError
    from rankstack.eval import evaluate, format_table
    from rankstack.eval.fallbacks import fallback_share, fallback_warning
    from rankstack.hardware import describe, set_torch_threads, threads_note
    from rankstack.rerankers import Fusion
    from rankstack.types import Run

    for flag, val in (("--depth", args.depth), ("--queries-limit", args.queries_limit)):
        if val is not None and val <= 0:
            raise UsageError(f"{flag} must be > 0, got {val}")
    specs = [n.strip() for n in (args.rerankers or _default_rerankers(args.dataset)).split(",") if n.strip()]
    if not specs:
        raise UsageError("--rerankers names no reranker")
    ds = load_dataset(args.dataset)  # an unknown name fails here, in a second, listing the known ones
    set_torch_threads(args.threads)
    queries = ds.judged_queries
    if args.queries_limit:
        queries = dict(list(queries.items())[: args.queries_limit])
    if ds.run is not None:
        first, source = ds.run, "shipped BM25 run"
    else:
        from rankstack.retrieval.bm25 import BM25Retriever

        first = BM25Retriever.from_corpus(ds.corpus).retrieve(queries, k=100)
        source = "bm25s (k1=0.9, b=0.4)"
    # rerankers reorder the top ``depth`` and keep the rest of the first stage below, so the BM25 row
    # is the first stage itself (DL19: Anserini's 0.5058) whatever the depth
    first = Run({q: r for q, r in first.items() if q in queries})
    first.name = "BM25"
    measures = ["nDCG@10"]
    qrels = {q: ds.qrels[q] for q in queries}
    per = {"BM25": evaluate(first, qrels, measures, rel=ds.rel, per_query=True)}
    save = _RunSaver(args.save_runs)
    save("BM25", first)
    extra: dict[str, dict[str, str]] = {"BM25": {}}
    loader = _Loader(args)
    warnings = []
    notes = loader.notes
    for spec in specs:
        name, rr = loader(spec)
        t0 = time.perf_counter()
        run = rr.rerank_run(first, queries, ds.corpus, depth=args.depth)
        secs = time.perf_counter() - t0
        per[name] = evaluate(run, qrels, measures, rel=ds.rel, per_query=True)
        save(name, run, rr)
        counts = {k: v for k, v in run.metadata.items() if k.startswith(("parse_", "fallback"))}
        fs = fallback_share(run.metadata, name)
        extra[name] = {"s/query": f"{secs / max(1, len(queries)):.2f}", "cache hits": str(run.metadata.get("cache_hits", 0)),
                       "repairs": str(sum(counts.values())),
                       "fell back": f"{fs.share:.0%}" if fs and fs.outputs and getattr(rr, "backend", None) else "-"}
        warnings.append(fallback_warning(run.metadata, name))
        rr.fusion = Fusion(0.8, "zscore")
        fused = rr.rerank_run(first, queries, ds.corpus, depth=args.depth)  # all cached: fusion only
        per[f"{name}+BM25 (0.8)"] = evaluate(fused, qrels, measures, rel=ds.rel, per_query=True)
        save(f"{name}+BM25 (0.8)", fused, rr)
    backend = loader.backend
    dtype = str(getattr(backend, "dtype", "")).replace("torch.", "")
    print(f"dataset {args.dataset} ({len(queries)} judged queries), first stage: {source}, depth {args.depth}, "
          + (f"model {args.model}{f' ({dtype})' if dtype else ''}, " if backend is not None else "")
          + f"{threads_note(args.threads, getattr(args, 'threads_auto', False))}, {describe()}")
    print(format_table(per, baseline="BM25", extra=extra))
    for note in notes:
        print(note)
    if args.save_runs:
        print(f"runs written to {args.save_runs}/: {', '.join(save.files)}")
    for w in filter(None, warnings):
        log.warning(w)
    return 0


def _default_rerankers(dataset: str) -> str:
    from rankstack.training.demo_student import demo_folder

    if (demo_folder(dataset) / "model" / "config.json").exists():
        return DEFAULT_RERANKERS.replace("dense:minilm-l6,", "dense:minilm-l6,student,")
    log.info("no demo student in the cache: `rankstack demo --rerankers student` trains one (once) and shows it")
    return DEFAULT_RERANKERS


def _student(args, folder: str) -> tuple[str, str]:
    """The demo's student (``folder``, or the label-free one trained once on the dataset's corpus and
    cached) and the line that says how it was made."""
    if folder:
        return folder, f"student: {folder}"
    from rankstack.training.demo_student import demo_student

    path, summ = demo_student(args.dataset, threads=args.threads)
    gen, flt, tr = summ.get("generation", {}), summ.get("filter", {}), summ.get("training", {})
    cost = summ.get("wall_seconds_this_call")
    kind = summ.get("config", {}).get("student_kind", "cross-encoder")
    return str(path), (f"student: MiniLM-L6 {kind} student distilled label-free on the {args.dataset} corpus (no "
                       f"{args.dataset} query or judgement): {gen.get('kept', '?')} queries written by SmolLM2 for "
                       f"{gen.get('sampled', '?')} passages, {flt.get('kept', '?')} kept, teacher "
                       f"{summ.get('config', {}).get('teacher')}, {tr.get('pairs_per_second', '?')} pairs/s"
                       + (f"; made in {cost / 60:.1f} min" if cost else "") + f"; cached in {path.parent}")


class _Loader:
    """Builds the demo's rerankers: ``NAME:MODEL`` with its own model; a reranker that runs its own
    model (dense, cross_encoder, mvp) with its default model; the others on ``--model``, sharing
    one backend."""

    def __init__(self, args):
        self.args, self.backend = args, None
        self.notes: list[str] = []  # how each student was made, printed under the table

    def __call__(self, spec: str):
        from rankstack.errors import UsageError
        from rankstack.rerankers import load_reranker
        from rankstack.rerankers.registry import reranker_class

        args = self.args
        name, _, model = spec.partition(":")
        kind, _, method = name.partition("-") if name.startswith("pointwise-") else (name, "", "")
        opts = {"method": method} if method else {}
        if name == "student":
            model, note = _student(args, model)
            self.notes.append(note)
            from rankstack.rerankers.registry import saved_reranker

            kind = saved_reranker(model) or "cross_encoder"  # a train distill folder says which it is
            return name, load_reranker(kind, model=model, cache=not args.no_cache, progress=True)
        try:
            cls = reranker_class(kind)
        except Exception as e:  # an unknown name is a usage error, said before any model loads
            raise UsageError(str(e)) from None
        if model or not getattr(cls, "uses_backend", True):
            own = {"model": model} if model else {}
            return name, load_reranker(kind, cache=not args.no_cache, progress=True, **own, **opts)
        rr = load_reranker(kind, model=args.model, backend=self.backend or "hf",
                           backend_options={"threads": args.threads} if args.threads else None,
                           cache=not args.no_cache, **opts)
        self.backend = getattr(rr, "backend", None) or self.backend
        return name, rr


class _RunSaver:
    """``--save-runs DIR``: each row's run as ``DIR/<row>.trec`` (+ ``.meta.json`` for reranked rows)."""

    def __init__(self, folder: str | None):
        self.folder, self.files = folder, []

    def __call__(self, row: str, run, reranker=None) -> None:
        if not self.folder:
            return
        import re
        from pathlib import Path

        from rankstack.data.trec import write_run, write_run_metadata
        from rankstack.rerankers.commands import run_metadata

        stem = re.sub(r"[^A-Za-z0-9+._-]+", "_", row).strip("_")
        path = Path(self.folder) / f"{stem}.trec"
        write_run(run, path, name=stem)
        if reranker is not None:
            write_run_metadata(path, run_metadata(reranker, run.metadata))
        self.files.append(path.name)
