"""CLI: ``rankstack rerank``: rerank a first-stage run into a TREC run block by block (resumable), in this
process or on a Ray cluster, and print a summary."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    from rankstack.eval.commands import MISSING_HELP

    p = sub.add_parser("rerank", help="rerank a first-stage run with an LLM (or cross-encoder) reranker")
    p.add_argument("--run", required=True, help="first-stage TREC run, or a dataset name (dl19)")
    p.add_argument("--queries", required=True, help="topics file or dataset name (dl19, vaswani, cacm)")
    p.add_argument("--corpus", required=True, help="corpus file / doc store, or dataset name")
    p.add_argument("--out", required=True, help="output TREC run file")
    add_reranker_args(p)
    p.add_argument("--depth", type=int, default=100, help="rerank the top DEPTH of each query (default 100)")
    p.add_argument("--queries-limit", type=int, default=None, help="only the first N queries of the run")
    p.add_argument("--block-queries", type=int, default=None,
                   help="queries per block: each block is reranked in one engine pass, appended to --out and flushed "
                        "(default: about 20,000 candidates a block, i.e. 20000 / depth queries)")
    p.add_argument("--no-resume", action="store_true",
                   help="start --out over even when it holds the first queries of an interrupted run of this command")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="auto|ADDRESS",
                   help="rerank on Ray: alone, a cluster on this machine; 'auto' joins the running cluster; "
                        "or a cluster address (needs the ray extra)")
    p.add_argument("--workers", type=int, default=1, help="--ray: reranker actors (model replicas)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="--ray: GPUs per actor (1: one actor per GPU)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="--ray: CPUs per actor (its torch threads)")
    p.add_argument("--qrels", default=None, help="also print nDCG@10 against these qrels (file or dataset name), on "
                                                 "the judged queries reranked")
    p.add_argument("--missing-as-zero", action="store_true", help="with --qrels: " + MISSING_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_rerank)


def add_reranker_args(p, cache_default: bool = True) -> None:
    """The flags that build a reranker (:func:`reranker_from_args`), shared by ``rerank`` and ``serve``.
    ``cache_default=False``: no score cache unless ``--cache FILE`` is given."""
    p.add_argument("--reranker", default="pointwise", help="registry name (pointwise, first, listwise, ...)")
    p.add_argument("--model", default=None, help="model: alias (smollm2-135m), hub id, local folder, .gguf, "
                                                 "LoRA adapter folder (default: the reranker's own)")
    p.add_argument("--method", default=None, help="pointwise: yesno | score10 | erank | prorank | qlm")
    p.add_argument("--instruction", default=None,
                   help="task instruction of every query (Qwen3-Reranker / mxbai style): pointwise puts it in its "
                        "prompt's instruction slot, other rerankers join it into the query ('Instruct: ...\\nQuery: "
                        "...'); in the fingerprint and the run's metadata")
    p.add_argument("--fusion-weight", type=float, default=None,
                   help="fuse with the first stage: W * rerank + (1 - W) * first stage (e.g. 0.8)")
    p.add_argument("--fusion-norm", default="zscore", choices=["zscore", "minmax"])
    p.add_argument("--backend", default="hf", help="hf | openai | vllm")
    p.add_argument("--base-url", default=None, help="openai backend: server URL")
    p.add_argument("--device", default=None, help="hf: cpu | cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="hf: float32 | bfloat16 | float16 (default: bf16 on CUDA; on CPU bf16 where the CPU has avx512_bf16/amx_bf16, else float32)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the cores free at start, rankstack.hardware.default_threads)")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass (hf: at most)")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="hf: padded tokens per forward pass (default: 32768 on a GPU, unbounded on CPU)")
    p.add_argument("--gpu-memory-utilization", type=float, default=None, help="vllm: share of GPU memory to take")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: context length to allocate for")
    p.add_argument("--tensor-parallel-size", type=int, default=None, help="vllm: GPUs one model is split over")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other backend option (repeatable; JSON values), e.g. --backend-option quantization=awq; "
                        "dense/cross_encoder/mvp: engine=torch|torch-bf16|onnx|onnx-int8|openvino|openvino-int8, "
                        "engine_tolerance=0.15, engine_check=refuse|warn|off")
    p.add_argument("--max-doc-tokens", type=int, default=None, help="cut passages to this many tokens")
    p.add_argument("--chunk-tokens", type=int, default=None,
                   help="long documents: split a document longer than this many tokens into overlapping chunks "
                        "(pointwise-style rerankers aggregate the chunk scores; listwise ones take the best chunk)")
    p.add_argument("--chunk-stride", type=int, default=None,
                   help="tokens between the starts of two chunks (default half of --chunk-tokens)")
    p.add_argument("--aggregate", default=None, choices=["max", "first", "mean", "sum"],
                   help="how chunk scores make a document's score (default max = MaxP)")
    if cache_default:
        p.add_argument("--no-cache", action="store_true", help="do not read or write the score cache")
        p.add_argument("--cache", default=None, help="SQLite cache file (default $RANKSTACK_CACHE/rerank_cache.sqlite)")
    else:  # no --no-cache attribute: reranker_from_args then caches only with --cache
        p.add_argument("--cache", default=None, help="keep scores in this SQLite cache file (default: no cache)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other reranker option (repeatable; JSON values), e.g. --option window=20 "
                        "--option prompt=reasonrank --option passes=2 --option budget=100@1,30@16")


def parse_options(pairs: list[str]) -> dict:
    """``["window=20", "prompt=reasonrank"]`` -> ``{"window": 20, "prompt": "reasonrank"}`` (JSON values when they parse)."""
    import json

    from rankstack.errors import UsageError

    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise UsageError(f"option {kv!r} is not KEY=VALUE")
        k, v = kv.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def reranker_spec(args) -> tuple[tuple, dict]:
    """``load_reranker``'s arguments for the command line's options: ``(args, kwargs)``."""
    from rankstack.errors import RankstackError, UsageError
    from rankstack.rerankers import Fusion
    from rankstack.rerankers.registry import reranker_class

    try:
        cls = reranker_class(args.reranker)
    except RankstackError as e:
        raise UsageError(str(e)) from None
    options: dict = {"progress": not getattr(args, "no_progress", False)}
    if getattr(args, "no_cache", args.cache is None):
        options["cache"] = False
    elif args.cache:
        options["cache"] = args.cache
    if args.fusion_weight is not None:
        if not 0.0 <= args.fusion_weight <= 1.0:
            raise UsageError(f"--fusion-weight must be in [0, 1], got {args.fusion_weight}")
        options["fusion"] = Fusion(args.fusion_weight, args.fusion_norm)
    if args.max_doc_tokens is not None:
        options["max_doc_tokens"] = args.max_doc_tokens
    if args.method is not None:
        options["method"] = args.method
    if args.instruction is not None:
        options["instruction"] = args.instruction
    for key in ("chunk_tokens", "chunk_stride", "aggregate"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    options.update(parse_options(getattr(args, "option", []) or []))
    if not getattr(cls, "uses_backend", True):
        if args.batch_size:
            options["batch_size"] = args.batch_size
        if args.device:
            options["device"] = args.device
        # an encoder reranker is its own backend: --backend-option engine=onnx-int8 (rankstack.rerankers.runtimes)
        options.update(parse_options(getattr(args, "backend_option", []) or []))
        return (args.reranker, args.model), options
    accepted = {"hf": ("device", "dtype", "threads", "batch_size", "max_batch_tokens"), "openai": ("base_url",),
                "vllm": ("dtype", "gpu_memory_utilization", "max_model_len", "tensor_parallel_size")}
    bopts: dict = {}
    for key in ("device", "dtype", "threads", "batch_size", "max_batch_tokens", "base_url", "gpu_memory_utilization",
                "max_model_len", "tensor_parallel_size"):
        val = getattr(args, key, None)
        if val is None or key == "threads" and getattr(args, "threads_auto", False) and getattr(args, "ray", None):
            continue  # Ray actors take their threads from --cpus-per-worker, not from this machine's load
        if key not in accepted.get(args.backend, ()):
            if key == "threads" and getattr(args, "threads_auto", False):
                continue  # chosen for this machine, not asked for: nothing to refuse
            raise UsageError(f"--{key.replace('_', '-')} does not apply to --backend {args.backend}")
        bopts[key] = val
    bopts.update(parse_options(getattr(args, "backend_option", []) or []))
    return (args.reranker, args.model, args.backend, bopts), options


def reranker_from_args(args):
    """Build the reranker the arguments describe (shared with benchmarks)."""
    from rankstack.errors import UsageError
    from rankstack.hardware import set_torch_threads
    from rankstack.models import check_model
    from rankstack.rerankers import load_reranker

    pos, options = reranker_spec(args)
    if args.model:
        check_model(args.model)
    if getattr(args, "no_progress", False):
        _quiet_model_loading()
    if len(pos) == 2 and args.threads:  # a reranker without a backend runs torch itself
        set_torch_threads(args.threads)
    try:
        return load_reranker(*pos, **options)
    except TypeError as e:  # an option this reranker does not take (e.g. --method for listwise)
        raise UsageError(f"reranker {args.reranker!r}: {e}") from e


def _quiet_model_loading() -> None:
    """``--no-progress``: no progress bars from transformers' model loading either."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def run_metadata(built, metadata: dict, **extra) -> dict:
    """What goes into ``RUN.meta.json``: the run's own metadata (reranker, fingerprint, depth,
    queries, docs, wall time, model calls, cache hits, ``parse_*`` counts) plus the model name
    (``built``: the reranker object; None when built elsewhere, e.g. on Ray workers)."""
    from rankstack.version import __version__

    from dataclasses import asdict

    backend = getattr(built, "backend", None)
    model = getattr(backend, "model_id", None) or getattr(built, "model_name", None)
    chunking = getattr(built, "chunking", None)
    more = {"chunking": asdict(chunking)} if chunking is not None else {}
    if getattr(built, "engine_report", None) and built.engine_report.get("engine", "torch") != "torch":
        more["engine"] = built.engine_report
    return {**metadata, "model": model, "rankstack": __version__, **more, **extra}


def check_rerank_args(args) -> None:
    """Every input and option of ``rankstack rerank`` checked before a model loads: a typo in
    ``--qrels`` fails in a second, not after the rerank."""
    from pathlib import Path

    from rankstack.data.datasets import check_inputs
    from rankstack.errors import RankstackError, UsageError
    from rankstack.models import check_model

    for flag, val in (("--depth", args.depth), ("--block-queries", args.block_queries),
                      ("--queries-limit", args.queries_limit), ("--workers", args.workers)):
        if val is not None and val <= 0:
            raise UsageError(f"{flag} must be > 0, got {val}")
    from rankstack.rerankers.backends import BACKENDS

    if getattr(args, "backend", None) and args.backend not in BACKENDS:  # a usage error: exit 2, before any data
        raise UsageError(f"unknown backend {args.backend!r}; known: {', '.join(BACKENDS)}")
    check_inputs(run=args.run, topics=args.queries, corpus=args.corpus, qrels=args.qrels)
    if Path(args.out).is_dir():
        raise RankstackError(f"--out {args.out}: is a folder; give the TREC run file to write")
    if args.model:
        check_model(args.model)


def _done_queries(path) -> int:
    """Queries already in an output run file (whole blocks are appended: count distinct qids)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return len({line.split(None, 1)[0] for line in f if line.strip()})
    except OSError:
        return 0


def cmd_rerank(args) -> int:
    import functools
    import hashlib

    from rankstack.data.datasets import resolve_corpus, resolve_queries, resolve_run_path
    from rankstack.errors import Interrupted
    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.chunking import run_identity
    from rankstack.rerankers.registry import reranker_class
    from rankstack.rerankers.stream import RunJob, RunSource, default_block_queries, rerank_to_file

    check_rerank_args(args)
    reranker_spec(args)  # option errors (unknown reranker, --threads for openai, ...) before any data loads
    run_path = resolve_run_path(args.run)
    queries = resolve_queries(args.queries)
    corpus = resolve_corpus(args.corpus)
    source = RunSource(run_path, limit=args.queries_limit)
    block = args.block_queries or default_block_queries(args.depth)
    tag = reranker_class(args.reranker).name.replace(" ", "_")
    if args.ray:
        from rankstack.rerankers.ray_engine import RayEngine

        pos, options = reranker_spec(args)
        reranker = None
        factory = functools.partial(load_reranker, *pos, **options)
        described = f"{pos} {options}"
        ident = (pos, sorted((k, v) for k, v in options.items() if k != "progress"))
        identity = "ray:" + hashlib.sha256(repr(ident).encode()).hexdigest()[:24]
        engine = RayEngine(None if args.ray == "local" else args.ray, workers=args.workers,
                           gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker)
    else:
        reranker = reranker_from_args(args)
        factory, engine, described, identity = None, None, repr(reranker), run_identity(reranker)
    job = RunJob(source, queries, corpus, args.depth, block, reranker=reranker, factory=factory,
                 progress=not args.no_progress)
    try:
        md = rerank_to_file(job, args.out, identity=identity, tag=tag, engine=engine, resume=not args.no_resume)
    except KeyboardInterrupt:
        n = _done_queries(args.out)
        raise Interrupted(f"interrupted after {n} quer{'y' if n == 1 else 'ies'} (in {args.out}); "
                          "rerun the same command to resume") from None
    meta_path = write_run_metadata_for(args, reranker, md, described, identity)
    print_summary(args, reranker, md, tag, meta_path)
    if args.qrels:
        _print_eval(args, run_path, tag)
    return 0


def write_run_metadata_for(args, reranker, md: dict, described: str, identity: str):
    from rankstack.data.trec import write_run_metadata

    extra = {"instruction": args.instruction} if getattr(args, "instruction", None) else {}
    return write_run_metadata(args.out, run_metadata(reranker, md, first_stage=args.run, depth=args.depth,
                                                     reranker=described, fingerprint=identity,
                                                     threads=getattr(args, "threads", None), **extra))


def print_summary(args, reranker, md: dict, tag: str, meta_path) -> None:
    """The end of a run: what ran where, the counts, threads, dtype, docs/s; then (stderr) a
    warning when more than 20% of the model outputs fell back."""
    import platform

    from rankstack.eval.fallbacks import fallback_share, fallback_warning
    from rankstack.hardware import threads_note

    wall = md["wall_seconds"]
    scored = int(md.get("docs", 0))
    parse = {k: v for k, v in md.items() if k.startswith("parse_")}
    backend = getattr(reranker, "backend", None)
    dtype = str(getattr(backend, "dtype", "") or "").replace("torch.", "") or "-"
    model = getattr(backend, "model_id", None) or getattr(reranker, "model_name", None) or args.model or "-"
    method = args.method or md.get("template") or tag
    print(f"reranked {args.run} with {tag} ({method}, model {model}) on {platform.processor() or platform.machine()}"
          + (f" (Ray, {args.workers} workers)" if args.ray else "") + f" -> {args.out} (+ {meta_path.name})")
    fs = fallback_share(md, method)
    print(f"queries {md.get('queries', 0)}  resumed {md.get('resumed_queries', 0)}  docs scored {scored}  "
          f"wall {wall:.1f}s  docs/s {scored / max(wall, 1e-9):.2f}  "
          f"{threads_note(args.threads, getattr(args, 'threads_auto', False))}  dtype {dtype}  "
          f"requests {md.get('requests', 0)}  model calls {md.get('model_requests', 0)}  "
          f"cache hits {md.get('cache_hits', 0)}  parse fallbacks {sum(parse.values())}"
          + (f" {parse}" if parse else "") + (f"  fell back {fs.fell_back} of {fs.outputs}" if fs and fs.fell_back else ""))
    warning = fallback_warning(md, method)
    if warning:
        log.warning(warning)


def _print_eval(args, run_path, tag: str) -> None:
    from rankstack.data.trec import read_run
    from rankstack.eval.commands import eval_table

    out = read_run(args.out)
    first = read_run(run_path)  # whole lists: the reranked run keeps the first stage's rest below its top DEPTH
    first = type(first)((first[q] for q in out if q in first), name=first.name)
    table, _ = eval_table({"first stage": first, tag: out}, args.qrels, ["nDCG@10"], baseline="first stage",
                          missing_as_zero=args.missing_as_zero)
    print(table)
