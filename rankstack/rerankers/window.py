"""The sliding window shared by the listwise rerankers (RankGPT, RankZephyr, ReasonRank, FIRST).

The top ``k`` candidates are reranked ``window`` at a time, from the bottom of the list up,
moving ``step`` positions per call, so strong passages bubble up to the top:
k=100, w=20, s=10 gives (80, 100), (70, 90), ..., (0, 20) — 9 sequential calls.

The loop is the *fixed* one: the last window is clamped to start at 0, so no position is left
out when ``k - window`` is not a multiple of ``step`` (RankGPT's original loop silently skipped
that final partial window), and no window is repeated. ``k < window`` gives one window.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt
from rankstack.rerankers.base import Reranker
from rankstack.types import Doc, Query, Ranking, ScoredDoc

log = logging.getLogger(__name__)

T = TypeVar("T")


def check_window(window: int, step: int) -> None:
    """Raise :class:`RankstackError` for a window/step that cannot cover the list."""
    if window < 2:
        raise RankstackError(f"window must be >= 2, got {window}")
    if step < 1:
        raise RankstackError(f"step must be >= 1, got {step}")
    if step > window:
        raise RankstackError(f"step ({step}) > window ({window}) would leave positions no window sees")


def window_schedule(k: int, window: int = 20, step: int = 10) -> list[tuple[int, int]]:
    """``(start, end)`` slices, bottom-up, covering positions ``0..k-1``."""
    check_window(window, step)
    if k <= 0:
        return []
    out: list[tuple[int, int]] = []
    end = k
    while True:
        start = max(0, end - window)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


def slide(items: Sequence[T], window: int, step: int, top_k: int | None = None) -> list[tuple[int, int]]:
    """The schedule for ``items`` (the top ``top_k`` of them)."""
    k = len(items) if top_k is None else min(top_k, len(items))
    return window_schedule(k, window, step)


def apply_window(items: list[T], start: int, end: int, order: Sequence[int]) -> list[T]:
    """``items`` with the slice ``[start, end)`` put in ``order`` (0-based within the window)."""
    win = items[start:end]
    if sorted(order) != list(range(len(win))):
        raise ValueError(f"order {list(order)} is not a permutation of the window (size {len(win)})")
    return items[:start] + [win[i] for i in order] + items[end:]


def sliding_rerank(items: list[T], rank_window: Callable[[list[T]], Sequence[int]], window: int = 20,
                   step: int = 10, top_k: int | None = None) -> list[T]:
    """Synchronous helper (one window at a time): ``rank_window(window_items) -> order``."""
    cur = list(items)
    for start, end in slide(cur, window, step, top_k):
        cur = apply_window(cur, start, end, rank_window(cur[start:end]))
    return cur


# --- the shared reranker: sliding window, passes, shuffle, prompt fitting -------------------------


class SlidingWindowReranker(Reranker):
    """Base of the listwise rerankers: sliding window over the top ``top_k``, passes, shuffle.

    A subclass provides :meth:`window_requests` (the requests for one window, usually one)
    and :meth:`window_order` (their results -> a permutation of the window). The program
    yields ONE window per query at a time, so the engine batches window i of every query
    into one backend call.

    Position bias (both options):
    - ``passes``: repeat the sliding window; without ``shuffle`` each pass starts from the
      previous pass's output (RankGPT's multi-pass).
    - ``shuffle``: every pass starts from the candidates shuffled (seeded by ``seed``, the qid
      and the pass); the passes are independent (run side by side, batched) and aggregated
      by mean reciprocal rank, ties kept in first-stage order.
    """

    ids: str = "numeric"

    def __init__(self, backend=None, *, window: int = 20, step: int = 10, top_k: int = 100, passes: int = 1,
                 shuffle: bool = False, seed: int = 0, max_passage_tokens: int | None = 100, **kw):
        check_window(window, step)
        if top_k < 1:
            raise RankstackError(f"top_k must be >= 1, got {top_k}")
        if passes < 1:
            raise RankstackError(f"passes must be >= 1, got {passes}")
        if "max_doc_tokens" in kw:  # the engine's generic name (CLI --max-doc-tokens) wins
            max_passage_tokens = kw.pop("max_doc_tokens")
        super().__init__(backend, max_doc_tokens=max_passage_tokens, **kw)
        self.window, self.step, self.top_k = int(window), int(step), int(top_k)
        self.passes, self.shuffle, self.seed = int(passes), bool(shuffle), int(seed)

    @property
    def max_passage_tokens(self) -> int | None:
        return self.max_doc_tokens

    def params(self) -> dict:
        return {"window": self.window, "step": self.step, "top_k": self.top_k, "passes": self.passes,
                "shuffle": self.shuffle, "seed": self.seed, "max_passage_tokens": self.max_doc_tokens}

    # --- what subclasses provide --------------------------------------------------------------
    def output_budget(self, n: int) -> int:
        """Tokens reserved for the output of an ``n``-passage window."""
        return 0

    def build_prompt(self, query: Query, passages: list[str]) -> Prompt:
        raise NotImplementedError

    def window_requests(self, query: Query, docs: list[Doc], stats: Counter) -> list:
        raise NotImplementedError

    def window_order(self, results: list, n: int, stats: Counter) -> list[int]:
        raise NotImplementedError

    # --- prompt fitting -------------------------------------------------------------------------
    def prompt_tokens(self, prompt: Prompt) -> int:
        be = self.backend
        if hasattr(be, "encode"):
            return len(be.encode(prompt))
        # backends without a renderer: contents plus a few template tokens per message
        return sum(be.count_tokens(c) + 8 for _, c in prompt.messages) + be.count_tokens(prompt.assistant_prefix)

    def fit_prompt(self, query: Query, passages: list[str], stats: Counter, assistant_prefix: str = "") -> Prompt:
        """Render the window; shrink every passage while the prompt exceeds the context minus the output.
        ``assistant_prefix`` is appended to the prompt's own, so the prompt measured here is the one
        the backend runs (and is tokenized once)."""
        def build(ps: list[str]) -> Prompt:
            p = self.build_prompt(query, ps)
            return Prompt(p.messages, p.assistant_prefix + assistant_prefix) if assistant_prefix else p

        prompt = build(passages)
        if self.backend is None:
            return prompt
        limit = self.backend.context_length - self.output_budget(len(passages))
        n_tok = self.prompt_tokens(prompt)
        if n_tok <= limit:
            return prompt
        stats["prompt_shrunk"] += 1
        lens = [self.backend.count_tokens(p) for p in passages]
        cap = max(lens)
        while n_tok > limit and cap > 1:
            cap = max(1, min(cap - 1, cap - math.ceil((n_tok - limit) / max(1, len(passages)))))
            cut = [self.backend.truncate(p, cap) if n > cap else p for p, n in zip(passages, lens)]
            prompt = build(cut)
            n_tok = self.prompt_tokens(prompt)
        if n_tok > limit:
            stats["prompt_over_context"] += 1
            log.warning("query %s: the prompt has %d tokens even with 1-token passages (limit %d)",
                        query.qid, n_tok, limit)
        return prompt

    # --- the program ----------------------------------------------------------------------------
    def program(self, query: Query, docs: list[Doc], stats: Counter):
        k = min(self.top_k, len(docs))
        head, tail = docs[:k], docs[k:]
        sched = [(s, e) for s, e in window_schedule(k, self.window, self.step) if e - s > 1]
        n_lists = self.passes if self.shuffle else 1
        if self.shuffle:
            lists = []
            for p in range(self.passes):
                order = list(range(k))
                random.Random(f"{self.seed}:{query.qid}:{p}").shuffle(order)
                lists.append(order)
        else:
            lists = [list(range(k))]
        rounds = 1 if self.shuffle else self.passes
        for _ in range(rounds):
            for s, e in sched:
                reqs, spans = [], []
                for cur in lists:  # independent shuffled passes go to the backend together
                    r = self.window_requests(query, [head[i] for i in cur[s:e]], stats)
                    spans.append((len(reqs), len(reqs) + len(r)))
                    reqs += r
                results = yield reqs
                stats["windows"] += len(lists)
                for j, (a, b) in enumerate(spans):
                    cur = lists[j]
                    order = self.window_order(results[a:b], e - s, stats)
                    lists[j] = cur[:s] + [cur[s + o] for o in order] + cur[e:]
        if n_lists == 1:
            ranked = [head[i].docid for i in lists[0]] + [d.docid for d in tail]
            return Ranking.from_order(query.qid, ranked)
        mrr = [0.0] * k
        for cur in lists:
            for r, i in enumerate(cur):
                mrr[i] += 1.0 / (r + 1) / n_lists
        order = sorted(range(k), key=lambda i: -mrr[i])  # stable: ties keep first-stage order
        out = Ranking(query.qid, [ScoredDoc(head[i].docid, mrr[i]) for i in order])
        return out.append_below(d.docid for d in tail)
