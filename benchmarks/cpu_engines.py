"""CPU engines side by side on the same pairs: torch fp32 / torch bf16 / ONNX fp32 / ONNX int8 /
OpenVINO fp32 / OpenVINO int8, for the dense and the cross-encoder rerankers on DL19's BM25 top-DEPTH.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/cpu_engines.py --threads 2 --depth 20 \
        > benchmarks/results/cpu_engines.txt

Per (reranker, engine): the load (export on the first load, checked against torch), nDCG@10 and the
largest |score - torch fp32 score| over every pair, and docs/s (no score cache) as the best of
``--rounds`` passes over the first ``--speed-queries`` queries, the engines interleaved so that other
work on the shared machine slows them alike (the median pass is printed beside it). ``--cross-encoder DIR`` takes a trained cross-encoder; without it the
cross-encoder is MiniLM's bi-encoder folder with a seeded random head (speed and score agreement
only: its nDCG is that of a random ranking). Goal (issue 23): int8 >= 2x the best torch path at
nDCG@10 within 0.005.
"""

from __future__ import annotations

import argparse
import time

from _common import dl19_top, footer, header, timed_rerank  # also sets the offline env defaults

ENGINES = ("torch", "torch-bf16", "onnx", "onnx-int8", "openvino", "openvino-int8")


def load_all(name, model, engines):
    from rankstack.rerankers import load_reranker

    out = {}
    for engine in engines:
        t = time.perf_counter()
        rr = load_reranker(name, model=model, engine=engine, cache=False, progress=False, engine_check="warn")
        out[engine] = (rr, time.perf_counter() - t)
    return out


def speed_rounds(built, run, ds, depth, rounds):
    """docs/s per engine: ``rounds`` passes over ``run``, engines interleaved (order rotated each round),
    so load from other work on the machine falls on every engine alike; the best and the median pass."""
    import statistics

    names = list(built)
    seen: dict[str, list[float]] = {e: [] for e in names}
    for r in range(rounds):
        for e in names[r % len(names):] + names[: r % len(names)]:
            out, secs = timed_rerank(built[e][0], run, ds, depth)
            seen[e].append(out.metadata["docs"] / secs)
    return {e: (max(v), statistics.median(v)) for e, v in seen.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None, help="quality over the first N judged queries (default all 43)")
    ap.add_argument("--speed-queries", type=int, default=5, help="queries of each timed pass")
    ap.add_argument("--rounds", type=int, default=3, help="timed passes per engine, interleaved")
    ap.add_argument("--dense", default="minilm-l6")
    ap.add_argument("--cross-encoder", default=None, help="a trained cross-encoder folder (default: minilm-l6 "
                                                          "with a seeded random head, for speed/agreement only)")
    ap.add_argument("--rerankers", default="dense,cross_encoder")
    ap.add_argument("--engines", default=",".join(ENGINES))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rankstack.eval import evaluate

    ce = args.cross_encoder or "minilm-l6"
    ce_note = "trained" if args.cross_encoder else "minilm-l6 bi-encoder + random head (seed 0): nDCG meaningless"
    header(f"torch {torch.__version__}, threads {args.threads} (torch, ONNX Runtime intra-op and OpenVINO alike)",
           f"data: DL19 BM25 top-{args.depth}, no score cache; dense {args.dense}; cross-encoder {ce} ({ce_note})",
           f"speed: {args.rounds} interleaved passes per engine over the first {args.speed_queries} queries x "
           f"top-{args.depth}; best (median) docs/s. Quality: every pair of the queries below, once")
    ds, qids, qrels, bm25 = dl19_top(args.depth, args.queries)
    fast = type(bm25)({q: bm25[q] for q in qids[: args.speed_queries]}, name="bm25")
    for name in args.rerankers.split(","):
        model = args.dense if name == "dense" else ce
        built = load_all(name, model, args.engines.split(","))
        rows, ref = {}, None
        for engine, (rr, load_s) in built.items():
            out, _ = timed_rerank(rr, bm25, ds, args.depth)
            ref = ref or out
            diff = max(abs(out[q].scores()[d] - s) for q in ref for d, s in ref[q].scores().items())
            rows[engine] = {"ndcg": evaluate(out, qrels, ["nDCG@10"], rel=ds.rel)["nDCG@10"], "diff": diff,
                            "load_s": load_s, "export": rr.engine_report.get("export", "-"),
                            "check": rr.engine_report.get("rel_diff")}
        for engine, (best, med) in speed_rounds(built, fast, ds, args.depth, args.rounds).items():
            rows[engine].update(docs_s=best, median=med)
        report(name, model, rows, len(qids), args.depth)
    footer()
    return 0


def report(name, model, rows, n_queries, depth):
    print(f"\n{name} ({model}): quality over {n_queries} queries x top-{depth} = {n_queries * depth} pairs")
    print(f"{'engine':<15}{'docs/s':>9}{'(median)':>10}{'x torch':>9}{'nDCG@10':>9}{'max|diff|':>11}{'load s':>8}"
          f"  export  check")
    best_torch = max(r["docs_s"] for e, r in rows.items() if e.startswith("torch"))
    for e, r in rows.items():
        chk = "-" if r["check"] is None else f"{r['check']:.3f}"
        print(f"{e:<15}{r['docs_s']:>9.1f}{r['median']:>10.1f}{r['docs_s'] / best_torch:>9.2f}{r['ndcg']:>9.4f}"
              f"{r['diff']:>11.4f}{r['load_s']:>8.1f}  {r['export']:<7} {chk}")
    for e in ("onnx-int8", "openvino-int8"):
        if e in rows and "torch" in rows:
            r = rows[e]
            print(f"goal {e}: {r['docs_s'] / best_torch:.2f}x the best torch path (goal >= 2x), nDCG@10 "
                  f"{r['ndcg'] - rows['torch']['ndcg']:+.4f} vs torch fp32 (goal within 0.005)")


if __name__ == "__main__":
    raise SystemExit(main())
