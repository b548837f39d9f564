"""CLI: ``rankstack train sft|grpo|distill|mvp`` and ``rankstack generate-queries``."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def _data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=None, help="named dataset (dl19, vaswani, cacm) for all four inputs")
    g.add_argument("--queries", help="topics file or dataset name")
    g.add_argument("--qrels", help="qrels file or dataset name")
    g.add_argument("--run", help="first-stage TREC run (candidates, hard negatives) or dataset name")
    g.add_argument("--corpus", help="corpus file or dataset name")
    g.add_argument("--train-fraction", type=float, default=1.0,
                   help="train on a seeded fraction of the queries (e.g. 0.5; the rest is printed as held out)")
    g.add_argument("--seed", type=int, default=0)
    e = p.add_argument_group("examples")
    e.add_argument("--paradigm", default="pointwise",
                   choices=["pointwise", "listwise", "first", "setwise", "groupwise", "rubric"])
    e.add_argument("--method", default="yesno", help="pointwise: yesno | score10 | erank | prorank")
    e.add_argument("--prompt", default=None, help="listwise: rankzephyr | reasonrank")
    e.add_argument("--depth", type=int, default=None, help="candidates per query taken from the run")
    e.add_argument("--window", type=int, default=None, help="listwise/first window size")
    e.add_argument("--step", type=int, default=None)
    e.add_argument("--size", type=int, default=None, help="setwise/groupwise set size")
    e.add_argument("--n-pos", type=int, default=None)
    e.add_argument("--n-hard", type=int, default=None)
    e.add_argument("--n-random", type=int, default=None)
    e.add_argument("--positive-min", type=int, default=None, help="lowest grade counted relevant (default: the "
                   "dataset's rel level, else 1)")
    m = p.add_argument_group("model and training")
    m.add_argument("--model", default="smollm2-135m", help="alias, folder, .gguf or hub id")
    m.add_argument("--output", "-o", required=True, help="folder for the trained model")
    m.add_argument("--lr", type=float, default=None)
    m.add_argument("--epochs", type=float, default=1.0)
    m.add_argument("--max-steps", type=int, default=None)
    m.add_argument("--batch-size", type=int, default=None)
    m.add_argument("--lora-r", type=int, default=16)
    m.add_argument("--lora-alpha", type=int, default=32)
    m.add_argument("--no-lora", action="store_true", help="full fine-tuning")
    m.add_argument("--no-merge", action="store_true", help="save the LoRA adapter instead of merged weights")
    m.add_argument("--cpu", action="store_true", help="train on CPU (fp32) even where a GPU exists")
    m.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the cores free at start)")


def add_parsers(sub) -> None:
    """``rankstack train {sft,grpo,distill,mvp}`` and ``rankstack generate-queries``.

    Args:
        sub: the CLI's subparsers.
    """
    p = sub.add_parser("train", help="fine-tune a reranker: SFT or GRPO (LoRA) on examples from qrels + a run")
    tsub = p.add_subparsers(dest="train_command", metavar="{sft,grpo,mvp}")
    for add in (_sft_parser, _grpo_parser, _distill_parser, _mvp_parser):
        add(tsub)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
    _generate_queries_parser(sub)


def _sft_parser(tsub) -> None:
    s = tsub.add_parser("sft", help="supervised fine-tuning (TRL SFTTrainer; loss on the completion)")
    _data_args(s)
    s.add_argument("--loss", default="lm", choices=["lm", "first"], help="first: LM + 10 x weighted RankNet")
    s.add_argument("--rank-loss", default="ranknet", choices=["ranknet", "listnet", "lambdarank"])
    s.add_argument("--max-length", type=int, default=512)
    s.set_defaults(func=cmd_sft)


def _grpo_parser(tsub) -> None:
    g = tsub.add_parser("grpo", help="GRPO with ranking rewards (TRL GRPOTrainer)")
    _data_args(g)
    g.add_argument("--reward", default="rankr1",
                   help="reward(s) with weights: erank, grouprank, reasonrank, retro, rankr1, prorank; "
                        "e.g. 'reasonrank:1,rankr1:0.5'")
    g.add_argument("--num-generations", type=int, default=4)
    g.add_argument("--max-completion-length", type=int, default=32)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--beta", type=float, default=0.0, help="KL coefficient (papers: 0.001)")
    g.add_argument("--assistant-prefix", default=None,
                   help="override the prompt's assistant prefix (e.g. '<think> </think> <answer>[' for a no-reasoning "
                        "Rank-R1 run on a small model)")
    g.set_defaults(func=cmd_grpo)


def _distill_parser(tsub) -> None:
    d = tsub.add_parser("distill", help="label-free distillation: synthetic queries from a corpus, a teacher's "
                                        "ranks, a trained student (every step's file kept in --out)")
    _distill_args(d)
    d.set_defaults(func=cmd_distill)


def _mvp_parser(tsub) -> None:
    v = tsub.add_parser("mvp", help="train an MVP reranker (multi-view, non-generative) on a teacher's ranks")
    v.add_argument("--queries", required=True, help="topics file or dataset name (the training queries)")
    v.add_argument("--run", required=True, help="first-stage run: each query's candidates")
    v.add_argument("--corpus", required=True, help="corpus file or dataset name")
    v.add_argument("--teacher", required=True, help="teacher: a run file or NAME:MODEL (e.g. dense:minilm-l6)")
    v.add_argument("--model", default="minilm-l6", help="backbone (alias, BERT folder) or an MVP folder")
    v.add_argument("--output", "-o", required=True, help="folder for the trained model")
    v.add_argument("--depth", type=int, default=100)
    v.add_argument("--list-size", type=int, default=16)
    v.add_argument("--top", type=int, default=8, help="teacher's top candidates always in a list")
    v.add_argument("--samples", type=int, default=1, help="lists per query")
    v.add_argument("--epochs", type=float, default=1.0)
    v.add_argument("--max-steps", type=int, default=-1)
    v.add_argument("--lr", type=float, default=3e-5)
    v.add_argument("--anchor-lr", type=float, default=1e-3)
    v.add_argument("--temperature", type=float, default=0.8)
    v.add_argument("--orth-weight", type=float, default=0.1)
    v.add_argument("--max-length", type=int, default=256)
    v.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--threads", type=int, default=None)
    v.set_defaults(func=cmd_mvp)


def _generate_queries_parser(sub) -> None:
    g = sub.add_parser("generate-queries", help="write synthetic training queries for a corpus's passages "
                                                "(InPars-style), optionally filtered by a teacher")
    g.add_argument("corpus", help="corpus file or dataset name")
    g.add_argument("--model", default="smollm2-135m", help="the generator (alias, folder, .gguf, hub id)")
    g.add_argument("-n", type=int, default=100, help="passages to sample")
    g.add_argument("-o", "--output", required=True, help="topics TSV to write (pseudo-qrels go to OUTPUT.qrels)")
    g.add_argument("--filter-teacher", default=None, help="keep only queries whose source passage this teacher "
                   "ranks in its top --keep-top among BM25's top --depth (e.g. dense:minilm-l6)")
    g.add_argument("--depth", type=int, default=30)
    g.add_argument("--keep-top", type=int, default=3)
    g.add_argument("--samples", type=int, default=1, help="generations per passage (the first usable is kept)")
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--max-passage-tokens", type=int, default=160)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate_queries)


def _distill_args(d: argparse.ArgumentParser) -> None:
    d.add_argument("--corpus", required=True, help="corpus file or dataset name (dl19, vaswani, cacm)")
    d.add_argument("--out", "-o", required=True, help="folder for every intermediate file and the model")
    t = d.add_argument_group("teacher and student")
    t.add_argument("--teacher", default="dense:minilm-l6", help="TREC run file, NAME:MODEL (dense:minilm-l6, "
                   "qlm:smollm2-135m, pointwise-METHOD:MODEL, cross_encoder:DIR), bm25 (the candidates' scores), "
                   "qrels:FILE|DATASET (human judgements), or an ensemble joined by '+' (dense:minilm-l6+bm25)")
    t.add_argument("--teacher-weights", default=None, help="an ensemble's weights, e.g. 0.8,0.2 (default equal)")
    t.add_argument("--student-kind", default="cross-encoder", choices=["cross-encoder", "dense", "llm"],
                   help="cross-encoder (default: a sentence-transformers CrossEncoder from an encoder), dense (a "
                        "bi-encoder, by default the MiniLM teacher itself, fine-tuned with DistillKLDivLoss) or llm "
                        "(a causal LM as a pointwise/FIRST reranker, LoRA)")
    t.add_argument("--student", default=None, help="the model to train (default: minilm-l6 for a cross-encoder, "
                   "smollm2-135m for an llm; alias, folder, .gguf, hub id)")
    t.add_argument("--generator", default=None, help="the model that writes queries (default: smollm2-135m, or the "
                   "llm student)")
    t.add_argument("--rounds", type=int, default=1, choices=[1, 2], help="2: the round-1 student fused with the "
                   "teacher teaches a second round on fresh passages (cross-encoder)")
    g = d.add_argument_group("synthetic queries")
    g.add_argument("--n-queries", type=int, default=500, help="passages sampled to write queries for")
    g.add_argument("--samples", type=int, default=1, help="queries drawn per passage (one shared prefill); the "
                   "distinct usable ones are kept")
    g.add_argument("--gen-passage-tokens", type=int, default=128, help="the generator's view of a passage")
    g.add_argument("--gen-batch-size", type=int, default=32, help="passages per generation batch")
    g.add_argument("--queries", default=None, help="train on these queries instead of generating them (topics file or "
                   "dataset; with --candidates and e.g. --teacher qrels:dl19 for the supervised variant)")
    g.add_argument("--candidates", default=None, help="with --queries: their first-stage run (file or dataset)")
    g.add_argument("--depth", type=int, default=30, help="BM25 candidates per synthetic query")
    g.add_argument("--keep-top", type=int, default=3, help="consistency filter: source in the teacher's top K")
    g.add_argument("--val-queries", type=int, default=0, help="hold out this many queries and report, label-free, "
                   "how the student ranks them (cross-encoder: MRR@10 of the source passage)")
    m = d.add_argument_group("training")
    m.add_argument("--loss", default=None, choices=["listnet", "lambda", "margin_mse", "listwise", "bce"],
                   help="cross-encoder: listnet (default), lambda, margin_mse; llm: listwise (default), margin_mse, bce")
    m.add_argument("--group-size", type=int, default=8, help="candidates per query in a training row")
    m.add_argument("--max-length", type=int, default=None, help="tokens per (query, passage) pair (cross-encoder, "
                   "default 128) or training prompt (llm, default 1536)")
    m.add_argument("--batch-size", type=int, default=4, help="cross-encoder: queries per step")
    m.add_argument("--epochs", type=float, default=1.0)
    m.add_argument("--lr", type=float, default=None,
                   help="default 7e-5 (cross-encoder), 2e-5 (dense), 2e-4 (llm LoRA)")
    m.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                   help="training precision (default: bf16 on CPUs with bf16 instructions and on GPUs, else fp32)")
    m.add_argument("--threads", type=int, default=None)
    m.add_argument("--seed", type=int, default=0)
    m2 = d.add_argument_group("llm students")
    m2.add_argument("--paradigm", default="pointwise", choices=["pointwise", "first"])
    m2.add_argument("--method", default="yesno", help="pointwise: yesno | prorank | qlm (query likelihood)")
    m2.add_argument("--max-doc-tokens", type=int, default=96)
    m2.add_argument("--window", type=int, default=20, help="first: passages per window")
    m2.add_argument("--lora-r", type=int, default=16)
    m2.add_argument("--no-lora", action="store_true", help="full fine-tuning")
    m2.add_argument("--token-budget", type=int, default=None, help="train on whole queries (seeded order) until their "
                    "prompts hold this many tokens (CPU training time is set by tokens)")


def _inputs(args):
    from rankstack.data.datasets import SPECS, check_inputs, resolve_corpus, resolve_qrels, resolve_queries, resolve_run
    from rankstack.errors import UsageError

    def pick(name):
        v = getattr(args, name) or args.dataset
        if not v:
            raise UsageError(f"--{name} is required (or --dataset)")
        return v

    check_inputs(topics=pick("queries"), qrels=pick("qrels"), run=pick("run"), corpus=pick("corpus"))
    queries, qrels = resolve_queries(pick("queries")), resolve_qrels(pick("qrels"))
    run, corpus = resolve_run(pick("run")), resolve_corpus(pick("corpus"))
    rel = SPECS[args.dataset].rel if args.dataset in SPECS else 1
    return queries, qrels, run, corpus, rel


def _examples(args):
    from rankstack.training.examples import build_examples, split_queries

    from rankstack.hardware import set_torch_threads

    queries, qrels, run, corpus, rel = _inputs(args)
    set_torch_threads(args.threads)
    qids = [q for q in run if q in qrels and q in queries]
    held = []
    if args.train_fraction < 1.0:
        qids, held = split_queries(qids, args.train_fraction, args.seed)
    kw = {"qids": qids, "seed": args.seed}
    positive_min = args.positive_min if args.positive_min is not None else rel
    if args.paradigm in ("pointwise", "rubric", "setwise", "groupwise"):
        kw["positive_min"] = positive_min
    if args.paradigm == "pointwise":
        kw["method"] = args.method
    if args.paradigm == "listwise" and args.prompt:
        kw["prompt"] = args.prompt
    for name in ("depth", "window", "step", "size", "n_pos", "n_hard", "n_random"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    from rankstack.rerankers.backends import load_backend

    backend = load_backend("hf", model=args.model, dtype="float32")  # cuts passages with the model's tokenizer
    ds = build_examples(args.paradigm, queries, qrels, run, corpus, backend=backend, **kw)
    print(f"examples: {len(ds)} from {len(qids)} queries ({args.paradigm})"
          + (f"; held out {len(held)} queries: {' '.join(held)}" if held else ""))
    return ds, rel


def _train_kw(args) -> dict:
    kw = {"lora": not args.no_lora, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "merge": not args.no_merge,
          "epochs": args.epochs, "seed": args.seed}
    if args.cpu:
        kw.update(use_cpu=True, bf16=False)
    if args.lr is not None:
        kw["learning_rate"] = args.lr
    if args.max_steps is not None:
        kw["max_steps"] = args.max_steps
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    return kw


def _summary(res, key: str) -> None:
    vals = res.losses(key)
    print(f"trained in {res.seconds / 60:.2f} min on {res.examples} examples; {key} per logged step: "
          + ", ".join(f"{v:.4f}" for v in vals))
    print(f"saved: {res.output_dir}  (use: rankstack rerank ... --model {res.output_dir})")


def cmd_sft(args) -> int:
    from rankstack.training.sft import train_sft

    ds, _ = _examples(args)
    res = train_sft(ds, model=args.model, output_dir=args.output, loss=args.loss, rank_loss=args.rank_loss,
                    max_length=args.max_length, **_train_kw(args))
    _summary(res, "loss")
    return 0


def cmd_grpo(args) -> int:
    from rankstack.training.grpo import train_grpo
    from rankstack.training.rewards import build_rewards

    build_rewards(args.reward)  # a bad reward name fails before any model loads
    ds, rel = _examples(args)
    if args.assistant_prefix is not None:
        ds = ds.map(lambda r: {"assistant_prefix": args.assistant_prefix})
    res = train_grpo(ds, model=args.model, output_dir=args.output, rewards=args.reward,
                     reward_params={"rel": rel, "positive_min": args.positive_min if args.positive_min is not None else rel},
                     num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                     temperature=args.temperature, beta=args.beta, **_train_kw(args))
    _summary(res, "reward")
    print(json.dumps({"reward_curve": res.losses("reward")}))
    return 0


def cmd_distill(args) -> int:
    from rankstack.data.datasets import check_inputs
    from rankstack.training.pipeline import DistillConfig, run_distill

    from rankstack.errors import RankstackError
    from rankstack.training.teacher import parse_weights

    check_inputs(corpus=args.corpus, topics=args.queries, run=args.candidates)

    ce = args.student_kind != "llm"  # an encoder student (cross-encoder or dense)
    if args.loss and (args.loss in ("listnet", "lambda")) != ce and args.loss != "margin_mse":
        raise RankstackError(f"--loss {args.loss} is not a loss for a {args.student_kind} student")
    cfg = DistillConfig(corpus=args.corpus, teacher=args.teacher, teacher_weights=parse_weights(args.teacher_weights),
                        student_kind=args.student_kind, student=args.student, generator=args.generator,
                        paradigm=args.paradigm, n_queries=args.n_queries, samples=args.samples,
                        gen_passage_tokens=args.gen_passage_tokens, gen_batch_size=args.gen_batch_size,
                        queries=args.queries, candidates=args.candidates, seed=args.seed, depth=args.depth,
                        keep_top=args.keep_top, max_doc_tokens=args.max_doc_tokens, method=args.method,
                        loss=args.loss, group_size=args.group_size, window=args.window, epochs=args.epochs,
                        learning_rate=args.lr, lora=not args.no_lora, lora_r=args.lora_r, max_length=args.max_length,
                        batch_size_ce=args.batch_size, bf16=None if args.dtype is None else args.dtype == "bfloat16",
                        threads=args.threads, val_queries=args.val_queries, token_budget=args.token_budget,
                        rounds=args.rounds)
    summary = run_distill(cfg, args.out)
    f, t = summary.get("filter", {}), summary.get("training", {})
    print(f"kept {f.get('kept')} of {f.get('queries')} synthetic queries (keep-rate {f.get('keep_rate')}); "
          f"{summary.get('examples')} training examples")
    if t:
        print(f"trained in {t['seconds'] / 60:.1f} min: {t['tokens']} tokens, {t['tokens_per_second']} tokens/s")
    if summary.get("validation"):
        print(f"held-out synthetic queries: {json.dumps(summary['validation'])}")
    from rankstack.training.ce_recipe import RERANKER

    reranker = RERANKER.get(args.student_kind, args.paradigm)
    final = f"{args.out}/round2/model" if args.rounds == 2 else f"{args.out}/model"
    print(f"saved: {final}  (use: rankstack rerank --reranker {reranker} --model {final} ...)")
    return 0


def cmd_generate_queries(args) -> int:
    import torch

    from rankstack.data.datasets import resolve_corpus
    from rankstack.rerankers.backends import load_backend
    from rankstack.rerankers.cache import ScoreCache, default_cache_path
    from rankstack.training import synthetic as S

    from rankstack.hardware import set_torch_threads

    corpus = resolve_corpus(args.corpus)
    set_torch_threads(args.threads)
    be = load_backend("hf", model=args.model, dtype="float32", batch_size=args.batch_size)
    syn = S.generate_queries(corpus, be, args.n, seed=args.seed, samples=args.samples, temperature=args.temperature,
                             max_passage_tokens=args.max_passage_tokens, cache=ScoreCache(default_cache_path()))
    stats = dict(syn.stats)
    if args.filter_teacher:
        from rankstack.retrieval.bm25 import BM25Retriever

        cands, teacher = S.candidate_runs(syn, BM25Retriever.from_corpus(corpus), args.filter_teacher, corpus,
                                          depth=args.depth)
        res = S.consistency_filter(syn, cands, teacher, keep_top=args.keep_top)
        syn = res.kept
        stats = dict(syn.stats)
        stats["keep_rate"] = round(res.keep_rate, 4)
    S.write_synthetic(syn, args.output, args.output + ".qrels", args.output + ".dropped.tsv")
    print(f"wrote {len(syn.queries)} queries to {args.output} (pseudo-qrels {args.output}.qrels, drops "
          f"{args.output}.dropped.tsv): {json.dumps(stats)}")
    return 0


def cmd_mvp(args) -> int:
    from rankstack.data.datasets import resolve_corpus, resolve_queries, resolve_run
    from rankstack.training.mvp import mvp_lists, train_mvp

    from rankstack.data.datasets import check_inputs
    from rankstack.hardware import set_torch_threads

    check_inputs(topics=args.queries, run=args.run, corpus=args.corpus)
    set_torch_threads(args.threads)
    queries, run, corpus = resolve_queries(args.queries), resolve_run(args.run), resolve_corpus(args.corpus)
    lists = mvp_lists(run, args.teacher, queries, corpus, depth=args.depth, list_size=args.list_size, top=args.top,
                      samples=args.samples, seed=args.seed, qids=[q for q in run if q in queries])
    print(f"lists: {len(lists)} from {len(set(lists['qid']))} queries; teacher {args.teacher}")
    res = train_mvp(lists, model=args.model, output_dir=args.output, max_length=args.max_length, epochs=args.epochs,
                    max_steps=args.max_steps, learning_rate=args.lr, anchor_lr=args.anchor_lr,
                    temperature=args.temperature, orth_weight=args.orth_weight, time_budget=args.time_budget,
                    seed=args.seed, extra={"teacher": args.teacher, "queries": args.queries, "run": args.run})
    _summary(res, "loss")
    return 0
