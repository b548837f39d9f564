"""Tokenizer work per run, before and after tokenize-once (issue: passages tokenized three times).

Drives the real rerankers' prompt building on DL19 BM25 top-D (every window of the sliding
schedule for FIRST and listwise, every pair for pointwise and QLM) and hands each round's prompts
to the hf backend's ``encode_many`` exactly as the engine does, without running the model. Two
modes on the same prompts:

- ``before``: the backend's token memo holds nothing (capacity 0), so every measurement
  (``fit_prompt``, ``count_tokens``, ``truncate``) and the backend's own encode tokenize again,
  as the code did before;
- ``after``: the default memo, so a prompt measured by ``fit_prompt`` is the prompt the backend
  runs and is tokenized once; a passage counted then cut, once.

Prints tokenizer calls (texts tokenized), tokens produced and seconds spent, and checks that the
model input ids are identical in both modes. Tokenizer only: cheap, no lock needed.

    .venv/bin/python benchmarks/tokenize_once.py > benchmarks/results/tokenize_once.txt
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from _common import dl19_top, footer, header  # also sets the offline env defaults


def rounds(rr, query, docs):
    """The prompt lists the engine would hand the backend for one query (window rerankers: each
    window of the schedule over the first-stage order; others: the program's first round)."""
    from rankstack.rerankers.window import SlidingWindowReranker, window_schedule

    stats: Counter = Counter()
    docs = [rr.prepare_doc(d) for d in docs]
    if isinstance(rr, SlidingWindowReranker):
        k = min(rr.top_k, len(docs))
        for s, e in window_schedule(k, rr.window, rr.step):
            if e - s > 1:
                yield [r.prompt for r in rr.window_requests(query, docs[s:e], stats)]
    else:
        yield [r.prompt for r in next(rr.program(query, docs, stats))]


def measure(rr, ds, run, capacity: int):
    from rankstack.rerankers.backends.base import TokenMemo

    be = rr.backend
    be._token_memo = memo = TokenMemo(capacity=capacity)
    ids, t0 = [], time.perf_counter()
    for qid in run:
        q = ds.queries[qid]
        docs = [ds.corpus.get(d.docid) for d in run[qid].docs]
        for prompts in rounds(rr, q, docs):
            ids.append(be.encode_many(prompts))
    return ids, time.perf_counter() - t0, memo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None, help="first N judged DL19 queries (default: all 43)")
    args = ap.parse_args()

    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.backends import load_backend

    be = load_backend("hf", model="smollm2-135m", dtype="float32")
    ds, qids, _, run = dl19_top(args.depth, args.queries)
    header(f"model: SmolLM2-135M-Instruct tokenizer (hf backend); data: DL19 BM25 top-{args.depth}, "
           f"{len(qids)} queries; no model forward (tokenizer work only)")
    specs = [("FIRST (window 20, step 10)", "first", {}),
             ("listwise rankzephyr (window 20, step 10)", "listwise", {}),
             ("listwise, passages cut to 40 tokens by fit (context 1024)", "listwise", {"_context": 1024}),
             ("pointwise yes/no (max_doc_tokens 512)", "pointwise", {}),
             ("pointwise QLM", "pointwise", {"method": "qlm"})]
    print()
    print(f"{'reranker':<58} {'mode':<7} {'texts tokenized':>15} {'tokens':>9} {'seconds':>8}  same ids")
    for label, name, opts in specs:
        opts = dict(opts)
        ctx = opts.pop("_context", None)
        be._max_length = ctx
        rr = load_reranker(name, backend=be, **opts)
        before, t_before, m_before = measure(rr, ds, run, capacity=0)
        after, t_after, m_after = measure(rr, ds, run, capacity=4096)
        same = before == after
        for mode, t, m in (("before", t_before, m_before), ("after", t_after, m_after)):
            print(f"{label:<58} {mode:<7} {m.misses:>15} {m.tokenized_tokens:>9} {t:>8.2f}  {same}")
    be._max_length = None
    print()
    print("texts tokenized: prompts and plain texts the tokenizer ran on (memo misses); tokens: what it produced.")
    footer()


if __name__ == "__main__":
    main()
