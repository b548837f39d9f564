"""Label-free distillation on DL19: BM25, the teacher, the student zero-shot and trained, fusions.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/distill_dl19.py \\
        --pointwise DIR_PW [--first DIR_FIRST] --depth 100 --first-depth 20 --threads 2

``DIR_*`` are ``rankstack train distill`` output folders (their summary.json says how the model
was made: generator, synthetic queries kept, training time and tokens/s). The students never saw
a DL19 query or judgement. Every run reranks DL19's BM25 candidates for all 43 judged queries;
nDCG@10 with paired t-test marks against BM25 (``+``/``-``: p < 0.05). Fusion weights are fixed
in advance, not tuned here: 0.8 student + 0.2 BM25 (ERank's, the project's default) and
0.5 student + 0.5 teacher, both on per-query z-scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pointwise", default=None, help="distill output folder of a pointwise student")
    ap.add_argument("--first", default=None, help="distill output folder of a FIRST student")
    ap.add_argument("--student", default="smollm2-135m", help="the untrained student (zero-shot rows)")
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--depth", type=int, default=100, help="candidates reranked by teacher and pointwise rows")
    ap.add_argument("--first-depth", type=int, default=20, help="candidates reranked by the FIRST rows")
    ap.add_argument("--dtype", default="float32", help="student inference dtype (fp32 head either way)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-zero-shot", action="store_true", help="skip the zero-shot student rows")
    ap.add_argument("--queries", type=int, default=None, help="only the first N judged queries (a quick look)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers import load_reranker
    from rankstack.retrieval.fusion import interpolate
    from rankstack.types import Run

    header(f"torch {torch.__version__}, threads {args.threads}")
    ds = load_dataset("dl19")
    qids = sorted(ds.judged_queries)[: args.queries] if args.queries else sorted(ds.judged_queries)
    qrels = {q: ds.qrels[q] for q in qids}

    def first_stage(depth):
        return Run({q: ds.run[q].top(depth) for q in qids}, name="bm25")

    per: dict = {}
    extra: dict = {}

    def record(name, run, secs=None, docs=None):
        per[name] = evaluate(run, qrels, ["nDCG@10"], rel=ds.rel, per_query=True)
        extra[name] = {"docs/s": f"{docs / secs:.1f}" if secs and docs else ""}
        print(f"  {name}: nDCG@10 {sum(per[name]['nDCG@10'].values()) / len(qids):.4f}"
              + (f" ({docs / secs:.1f} docs/s, {secs:.0f} s)" if secs and docs else ""))
        sys.stdout.flush()

    def rerank(name, rr, depth):
        bm = first_stage(depth)
        t = time.perf_counter()
        run = rr.rerank_run(bm, ds.queries, ds.corpus, depth=depth, name=name)
        secs = time.perf_counter() - t
        record(f"{name} @{depth}", run, secs if run.metadata.get("model_requests") else None, len(qids) * depth)
        return run

    bopts = {"threads": args.threads, "dtype": args.dtype, "batch_size": args.batch_size}
    record(f"BM25 @{args.depth}", first_stage(args.depth))
    teacher = rerank("teacher dense", load_reranker("dense", model=args.teacher, progress=False), args.depth)

    def fusions(name, run, depth):
        bm = first_stage(depth)
        record(f"{name} + BM25 (0.8/0.2)", interpolate([run, bm], [0.8, 0.2], depth=depth))
        t_run = teacher if depth == args.depth else rerank("teacher dense", load_reranker(
            "dense", model=args.teacher, progress=False), depth)
        record(f"{name} + teacher (0.5/0.5)", interpolate([run, t_run], [0.5, 0.5], depth=depth))

    made = {}
    for kind, folder in (("pointwise", args.pointwise), ("first", args.first)):
        if not folder:
            continue
        summ = json.loads(open(os.path.join(folder, "summary.json")).read())
        made[kind] = summ
        depth = args.depth if kind == "pointwise" else args.first_depth
        # the options the student was trained with (passage budget): the zero-shot row gets the same
        from rankstack.rerankers.registry import saved_options

        opts = saved_options(os.path.join(folder, "model"), kind) or (
            {"max_doc_tokens": summ["config"]["max_doc_tokens"]} if kind == "pointwise"
            else {"max_passage_tokens": summ["config"]["max_doc_tokens"]})
        print(f"{kind}: reranker options {opts}")
        label = kind if opts.get("method", "yesno") == "yesno" else f"{kind} {opts['method']}"  # e.g. pointwise qlm
        if not args.no_zero_shot:
            rerank(f"{label} zero-shot", load_reranker(kind, model=args.student, backend_options=bopts, progress=False,
                                                       **opts), depth)
        run = rerank(f"{label} distilled", load_reranker(kind, model=os.path.join(folder, "model"),
                                                         backend_options=bopts, progress=False, **opts), depth)
        fusions(f"{label} distilled", run, depth)

    print()
    print(f"DL19, {len(qids)} judged queries, BM25 candidates (pointwise/teacher @{args.depth}, FIRST "
          f"@{args.first_depth}); nDCG@10; marks: paired t-test vs the BM25 row, p < 0.05")
    print(format_table(per, baseline=f"BM25 @{args.depth}", extra=extra))
    for kind, summ in made.items():
        cfg, flt, tr = summ["config"], summ.get("filter", {}), summ.get("training", {})
        gen = summ.get("generation", {})
        print(f"{kind}: generator {cfg.get('generator') or cfg['student']}, {gen.get('sampled', '?')} passages sampled, "
              f"{flt.get('kept')} queries kept by the filter (keep-rate {flt.get('keep_rate')}), teacher "
              f"{cfg['teacher']}; {summ.get('examples')} examples; trained {tr.get('seconds', 0) / 60:.1f} min, "
              f"{tr.get('tokens')} tokens, {tr.get('tokens_per_second')} tokens/s, bf16 {tr.get('bf16')}; "
              f"loss {cfg.get('loss') if kind == 'pointwise' else 'first (LM + 10 RankNet)'}, lr {cfg['learning_rate']}, "
              f"epochs {cfg['epochs']}, LoRA {cfg['lora']}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
