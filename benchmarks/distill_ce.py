"""Label-free cross-encoder students against BM25 and their teacher, on one collection.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/distill_ce.py --dataset dl19 \\
        --students runs/ce-listnet runs/ce-lambda runs/ce-margin --threads 2 [--qlm] [--round2]

Each ``--students`` folder is a ``rankstack train distill`` output (its ``summary.json`` says how
the student was made and what each step cost). The students never saw a query or judgement of
the collection: their queries were written from its passages and their labels are the teacher's.
Every row reranks the collection's BM25 top ``--depth`` (DL19: the shipped BM25 run; Vaswani and
CACM: bm25s, k1=0.9 b=0.4) for every judged query. Rows: BM25; the teachers (dense MiniLM, with
``--qlm`` zero-shot SmolLM2 query likelihood) and the recipe's ensemble teacher (per-query
z-scores, the recipe's weights); each student, and each fused with BM25 (0.8/0.2 on z-scores:
ERank's weights, the project's default, fixed in advance), with the teacher fused the same way as
the control (what the fusion gives without any training). nDCG@10 with two paired t-test
marks: vs BM25 and vs the dense teacher (``+``/``-``: p < 0.05). docs/s: this process, these
threads, the reranking of the same pairs (first pass; no cache).
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
    ap.add_argument("--dataset", default="dl19")
    ap.add_argument("--students", nargs="+", default=[],
                    help="train distill output folders (cross-encoder or dense students, by their summary.json)")
    ap.add_argument("--dense-students", nargs="*", default=[],
                    help="folders whose model/ is a bi-encoder student (the dense teacher fine-tuned on the "
                         "ensemble teacher's labels, benchmarks/dense_student.py)")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--qlm", action="store_true", help="also the zero-shot SmolLM2 QLM teacher row (slow on a CPU)")
    ap.add_argument("--round2", action="store_true", help="also each folder's round2/model")
    ap.add_argument("--queries", type=int, default=None, help="only the first N judged queries (a quick look)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.eval.significance import paired_ttest
    from rankstack.rerankers import load_reranker
    from rankstack.retrieval.fusion import interpolate
    from rankstack.types import Run

    header(f"torch {torch.__version__}, threads {args.threads}, dataset {args.dataset}, BM25 top-{args.depth}")
    ds = load_dataset(args.dataset)
    qids = sorted(ds.judged_queries)[: args.queries] if args.queries else sorted(ds.judged_queries)
    if ds.run is not None:
        bm25 = Run({q: ds.run[q].top(args.depth) for q in qids}, name="bm25")
    else:
        from rankstack.retrieval.bm25 import BM25Retriever

        bm25 = BM25Retriever.from_corpus(ds.corpus, show_progress=False).retrieve(
            {q: ds.queries[q] for q in qids}, k=args.depth)
    qrels = {q: ds.qrels[q] for q in qids}
    per: dict = {}
    extra: dict = {}
    runs: dict = {}

    def record(name, run, secs=None):
        runs[name] = run
        per[name] = evaluate(run, qrels, ["nDCG@10"], rel=ds.rel, per_query=True)
        docs = sum(min(args.depth, len(bm25[q])) for q in qids)
        extra[name] = {"docs/s": f"{docs / secs:.1f}" if secs else ""}
        mean = sum(per[name]["nDCG@10"].values()) / len(qids)
        print(f"  {name}: nDCG@10 {mean:.4f}" + (f" ({docs / secs:.1f} docs/s, {secs:.0f} s)" if secs else ""),
              flush=True)

    def rerank(name, rr):
        t = time.perf_counter()
        run = rr.rerank_run(bm25, ds.queries, ds.corpus, depth=args.depth, name=name)
        record(name, run, time.perf_counter() - t)
        return run

    record("BM25", bm25)
    teacher = rerank("teacher: dense MiniLM-L6", load_reranker("dense", model="minilm-l6", progress=False, cache=False))
    # the control for every "student + BM25" row: does training add anything the fusion alone does not?
    record("teacher: dense MiniLM-L6 + BM25 (0.8/0.2)", interpolate([teacher, bm25], [0.8, 0.2], depth=args.depth))
    if args.qlm:
        rerank("teacher: QLM SmolLM2 zero-shot", load_reranker(
            "pointwise", model="smollm2-135m", method="qlm", progress=False, cache=False,
            backend_options={"threads": args.threads, "dtype": "auto"}))
    made = []
    teachers_done = set()
    for folder in args.students:
        summ = json.loads(open(os.path.join(folder, "summary.json")).read())
        cfg = summ["config"]
        spec, weights = cfg["teacher"], cfg.get("teacher_weights")
        if "+" in spec and spec not in teachers_done:
            teachers_done.add(spec)
            parts = spec.split("+")
            w = weights or [1 / len(parts)] * len(parts)
            member = {"dense:minilm-l6": teacher, "bm25": bm25}
            if all(p in member for p in parts):
                record(f"teacher: {spec} ({','.join(f'{x:g}' for x in w)})",
                       interpolate([member[p] for p in parts], w, depth=args.depth))
        models = [("", os.path.join(folder, "model"))]
        if args.round2 and os.path.exists(os.path.join(folder, "round2", "model", "config.json")):
            models.append((" round 2", os.path.join(folder, "round2", "model")))
        for suffix, path in models:
            kind = cfg.get("student_kind", "cross-encoder")
            label = f"{kind} student {os.path.basename(folder.rstrip('/'))} ({cfg['loss']}){suffix}"
            run = rerank(label, load_reranker("dense" if kind == "dense" else "cross_encoder", model=path,
                                              progress=False, cache=False))
            record(f"{label} + BM25 (0.8/0.2)", interpolate([run, bm25], [0.8, 0.2], depth=args.depth))
        made.append((folder, summ))

    for folder in args.dense_students:
        label = f"dense student {os.path.basename(folder.rstrip('/'))}"
        run = rerank(label, load_reranker("dense", model=os.path.join(folder, "model"), progress=False, cache=False))
        record(f"{label} + BM25 (0.8/0.2)", interpolate([run, bm25], [0.8, 0.2], depth=args.depth))
        info = os.path.join(folder, "train.txt")
        if os.path.exists(info):
            made.append((folder, {"note": open(info).read().strip()}))

    t_name = "teacher: dense MiniLM-L6"
    for name in per:  # the second mark: a paired t-test against the dense teacher
        if name == t_name:
            extra[name]["vs teacher"] = ""
            continue
        t = paired_ttest(per[t_name]["nDCG@10"], per[name]["nDCG@10"])
        mark = ("+" if t.mean_diff > 0 else "-") if t.p_value == t.p_value and t.p_value < 0.05 else ""
        extra[name]["vs teacher"] = f"{t.mean_diff:+.4f}{mark} (p={t.p_value:.3f})"
    print()
    print(f"{args.dataset}, {len(qids)} judged queries, BM25 top-{args.depth}; nDCG@10; marks: paired t-test vs "
          f"BM25 (after the value) and vs the dense teacher (column), p < 0.05")
    print(format_table(per, baseline="BM25", extra=extra))
    for folder, summ in made:
        print(f"\n{folder}: {summ['note'] if 'note' in summ else recipe_line(summ)}")
        if summ.get("round2"):
            print(f"  round 2: {recipe_line(summ['round2'])}")
    footer()
    return 0


def recipe_line(summ: dict) -> str:
    """What the recipe did and what each step cost, from its summary.json."""
    cfg, gen, flt, tr = summ.get("config", {}), summ.get("generation", {}), summ.get("filter", {}), summ.get("training", {})
    val = summ.get("validation", {})
    steps = [("generation", gen.get("seconds")), ("teacher", summ.get("teacher_seconds")),
             ("training", tr.get("seconds")), ("validation", val.get("seconds"))]
    total = sum(s for _, s in steps if s)
    return (f"teacher {cfg.get('teacher')} {cfg.get('teacher_weights') or ''}, loss {cfg.get('loss')}, "
            f"generator {cfg.get('generator')}: {gen.get('sampled')} passages x {cfg.get('samples')} samples -> "
            f"{gen.get('kept')} queries written, {flt.get('kept')} kept by the filter (keep-rate {flt.get('keep_rate')}); "
            f"{summ.get('examples')} rows, {summ.get('pairs')} pairs; generation {gen.get('tokens_per_second')} tok/s "
            f"({gen.get('generated_tokens_per_second')} generated tok/s, {gen.get('gflops')} GFLOP/s = "
            f"{gen.get('peak_fraction')} of the {gen.get('peak_gflops')} GFLOP/s peak estimate); training "
            f"{tr.get('tokens')} tokens at {tr.get('tokens_per_second')} tok/s, {tr.get('pairs_per_second')} pairs/s; "
            f"validation (held-out generated queries, MRR@10 of the source passage): {json.dumps(val)}; steps (s): "
            + ", ".join(f"{n} {s}" for n, s in steps) + f"; total {total:.0f} s = {total / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
