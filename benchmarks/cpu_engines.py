"""CPU engines side by side on the same pairs: torch fp32 / torch bf16 / ONNX fp32 / ONNX int8 /
OpenVINO fp32 / OpenVINO int8, for the dense and the cross-encoder rerankers on DL19's BM25 top-DEPTH.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/cpu_engines.py --threads 2 --depth 20 \
        > benchmarks/results/cpu_engines.txt

Per (reranker, engine): the load (export on the first load, checked against torch), docs/s of a cold
rerank of every query's top DEPTH (no score cache), nDCG@10, and the largest |score - torch fp32 score|
over all the pairs. ``--cross-encoder DIR`` takes a trained cross-encoder; without it the
cross-encoder is MiniLM's bi-encoder folder with a seeded random head (speed and score agreement
only: its nDCG is that of a random ranking). Goal (issue 23): int8 >= 2x the best torch path at
nDCG@10 within 0.005.
"""

from __future__ import annotations

import argparse
import time

from _common import dl19_top, footer, header, timed_rerank  # also sets the offline env defaults

ENGINES = ("torch", "torch-bf16", "onnx", "onnx-int8", "openvino", "openvino-int8")


def run_engine(name, model, engine, bm25, ds, depth):
    from rankstack.eval import evaluate
    from rankstack.rerankers import load_reranker

    t = time.perf_counter()
    rr = load_reranker(name, model=model, engine=engine, cache=False, progress=False, engine_check="warn")
    load_s = time.perf_counter() - t
    warm = {q: bm25[q] for q in list(bm25)[:1]}
    rr.rerank_run(warm, ds.queries, ds.corpus, depth=min(depth, 8))  # first-call overheads out of the timing
    out, secs = timed_rerank(rr, bm25, ds, depth)
    ndcg = evaluate(out, ds.qrels, ["nDCG@10"], rel=ds.rel)["nDCG@10"]
    rep = rr.engine_report
    return out, {"docs_s": out.metadata["docs"] / secs, "ndcg": ndcg, "load_s": load_s,
                 "export": rep.get("export", "-"), "check": rep.get("rel_diff")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None, help="only the first N queries (default all 43)")
    ap.add_argument("--dense", default="minilm-l6")
    ap.add_argument("--cross-encoder", default=None, help="a trained cross-encoder folder (default: minilm-l6 "
                                                          "with a seeded random head, for speed/agreement only)")
    ap.add_argument("--rerankers", default="dense,cross_encoder")
    ap.add_argument("--engines", default=",".join(ENGINES))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    ce = args.cross_encoder or "minilm-l6"
    ce_note = "trained" if args.cross_encoder else "minilm-l6 bi-encoder + random head (seed 0): nDCG meaningless"
    header(f"torch {torch.__version__}, threads {args.threads} (torch, ONNX Runtime intra-op and OpenVINO alike)",
           f"data: DL19 BM25 top-{args.depth}, cold (no score cache); dense {args.dense}; cross-encoder {ce} ({ce_note})")
    ds, qids, _, bm25 = dl19_top(args.depth, args.queries)
    for name in args.rerankers.split(","):
        model = args.dense if name == "dense" else ce
        rows, ref = {}, None
        for engine in args.engines.split(","):
            out, row = run_engine(name, model, engine, bm25, ds, args.depth)
            if ref is None:
                ref = out
            row["diff"] = max(abs(out[q].scores()[d] - s) for q in ref for d, s in ref[q].scores().items())
            rows[engine] = row
            print(f"  {name} {engine}: {row}", flush=True)
        print(f"\n{name} ({model}), {len(qids)} queries x top-{args.depth} = {len(qids) * args.depth} pairs")
        print(f"{'engine':<15}{'docs/s':>9}{'x torch':>9}{'nDCG@10':>9}{'max|diff|':>11}{'load s':>8}  export  check")
        best_torch = max(r["docs_s"] for e, r in rows.items() if e.startswith("torch"))
        for e, r in rows.items():
            chk = "-" if r["check"] is None else f"{r['check']:.3f}"
            print(f"{e:<15}{r['docs_s']:>9.1f}{r['docs_s'] / best_torch:>9.2f}{r['ndcg']:>9.4f}{r['diff']:>11.4f}"
                  f"{r['load_s']:>8.1f}  {r['export']:<7} {chk}")
        for e in ("onnx-int8", "openvino-int8"):
            if e in rows:
                r = rows[e]
                print(f"goal {e}: {r['docs_s'] / best_torch:.2f}x the best torch path (>= 2x), nDCG@10 "
                      f"{r['ndcg'] - rows['torch']['ndcg']:+.4f} vs torch fp32 (within 0.005)")
        print()
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
