"""Dynamic batching: concurrent rerank requests merged into one engine pass, on one worker thread.

The engine already drives many queries in lockstep (:func:`rankstack.rerankers.engine.rerank_queries`: window i of
every query goes to the backend in one batch), so a batch of HTTP requests is simply a batch of
queries, one unique qid per request. The worker thread owns the model: it takes the first
waiting job, waits up to ``max_wait_ms`` after that job arrived for others (or until
``max_batch_docs`` documents are waiting), and runs them together. Jobs are
``concurrent.futures.Future``s: the event loop awaits them (``asyncio.wrap_future``) and never
blocks on the model.

No wasted work:

- a job :meth:`abandon`-ed while waiting (its client hung up, or its timeout passed) is dropped
  without costing model time; one abandoned while its pass runs stops the pass before its next
  chunk of model requests (the engine's ``chunk_size``). The pass's other jobs then run on,
  their finished chunks taken from a cache kept for the pass (the reranker's own, or one in
  memory): nothing computed for them is computed again.
- each job's input is checked before it joins a pass (query characters and tokens, TEI's
  ``truncate=false`` document tokens: :class:`InputTooLong`, answered 413), so a bad request
  fails alone and never reruns its neighbours. If a merged pass still raises (the reranker
  failed), each job runs again alone (from the pass's cache) and only the failing one fails.

``on_batch(n_requests, n_docs, seconds)`` is called after every pass, ``on_model(n)`` after
each chunk of ``n`` model requests (metrics).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

from rankstack.errors import RankstackError
from rankstack.rerankers.base import Reranker
from rankstack.rerankers.cache import ScoreCache
from rankstack.rerankers.chunking import service_texts
from rankstack.rerankers.engine import rerank_queries
from rankstack.rerankers.calibration import relevance_scores
from rankstack.serve import telemetry
from rankstack.serve.schemas import RerankJob, Scored
from rankstack.types import Doc, Query

log = logging.getLogger(__name__)


class QueueFull(RankstackError):
    """More requests or documents are waiting than the server accepts (answered 503)."""


class Closed(RankstackError):
    """The batcher is shutting down (answered 503)."""


class InputTooLong(RankstackError):
    """A query or text over the token or character limits where truncation is off (answered 413)."""


class Abandoned(RankstackError):
    """The job's client stopped waiting (its timeout passed or it hung up)."""


class _PassCut(Exception):
    """Raised between two chunks of a pass when one of its jobs was abandoned."""


@dataclass
class QueryLimits:
    """The query's limits: characters and tokens; ``truncate`` (the default of requests that do
    not say): cut an over-long query, else answer 413. ``doc_tokens``: the documents' token
    limit that TEI's ``truncate=false`` enforces (the reranker's own, when it has one)."""

    max_chars: int = 20_000
    max_tokens: int = 256
    truncate: bool = True
    doc_tokens: int | None = None


@dataclass
class _Pending:
    job: RerankJob
    future: Future
    arrived: float = field(default_factory=time.monotonic)
    abandoned: bool = False
    trace: object = None  # the request's OpenTelemetry context
    span: object = None  # its open queue span
    tokens: int = 0


@dataclass
class Tokens:
    """Counting and cutting text with the reranker's own tokenizer."""

    count: Callable[[str], int]
    cut: Callable[[str, int, bool], str]  # (text, n, from the left) -> at most n tokens


def token_tools(reranker) -> Tokens:
    """The reranker's tokenizer: its backend's, else its encoder's (dense, cross-encoder); else
    its backend's own count/truncate (a server tokenizing remotely), else whitespace words."""
    be = getattr(reranker, "backend", None)
    for holder in (be, getattr(reranker, "encoder", None), getattr(reranker, "model", None)):
        tok = getattr(holder, "tokenizer", None)
        if tok is not None and callable(tok):
            def ids(text: str, tok=tok) -> list[int]:
                return tok(text, add_special_tokens=False)["input_ids"]

            def cut(text: str, n: int, left: bool, tok=tok) -> str:
                t = ids(text)
                return text if len(t) <= n else tok.decode(t[-n:] if left else t[:n], skip_special_tokens=True)

            return Tokens(lambda text: len(ids(text)), cut)

    def words(text: str, n: int, left: bool) -> str:
        w = text.split()
        return text if len(w) <= n else " ".join(w[-n:] if left else w[:n])

    if be is not None and hasattr(be, "count_tokens") and hasattr(be, "truncate"):
        return Tokens(be.count_tokens, lambda text, n, left: words(text, n, True) if left else be.truncate(text, n))
    return Tokens(lambda text: len(text.split()), words)


class Batcher:
    """One worker thread running ``reranker`` over merged jobs (see the module docstring)."""

    def __init__(self, reranker, *, max_batch_docs: int = 256, max_wait_ms: float = 10.0,
                 max_queue_docs: int = 4096, max_queue_requests: int = 256, limits: QueryLimits | None = None,
                 on_batch: Callable[[int, int, float], None] | None = None, on_model: Callable[[int], None] | None = None,
                 tracing: telemetry.Telemetry | None = None):
        if max_batch_docs < 1 or max_wait_ms < 0 or max_queue_docs < 1 or max_queue_requests < 1:
            raise RankstackError("max_batch_docs, max_queue_docs, max_queue_requests must be >= 1, max_wait_ms >= 0")
        self.reranker = reranker
        self.max_batch_docs, self.max_wait = max_batch_docs, max_wait_ms / 1000.0
        self.max_queue_docs, self.max_queue_requests = max_queue_docs, max_queue_requests
        self.limits = limits or QueryLimits()
        self.on_batch, self.on_model = on_batch, on_model
        self.tracing = tracing or telemetry.Telemetry(enabled=False)
        self.tokens = token_tools(reranker)
        self.model_requests = 0  # model requests run (all passes): the work done
        self._queue: deque[_Pending] = deque()
        self._queued_docs = 0
        self._running: list[_Pending] = []
        self._live: list[_Pending] = []
        self._cv = threading.Condition()
        self._closed = False
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._loop, name="rankstack-batcher", daemon=True)
        self._thread.start()

    # --- the event loop's side -----------------------------------------------------------------
    def submit(self, job: RerankJob, trace=None) -> _Pending:
        p = _Pending(job, Future(), trace=trace)
        with self._cv:
            if self._closed:
                raise Closed("the server is shutting down")
            if self._queue and self._queued_docs + len(job.texts) > self.max_queue_docs:
                raise QueueFull(f"{self._queued_docs} documents are waiting (limit {self.max_queue_docs}); retry later")
            if len(self._queue) + len(self._running) >= self.max_queue_requests:
                raise QueueFull(f"{len(self._queue) + len(self._running)} requests are waiting or running "
                                f"(limit {self.max_queue_requests}); retry later")
            p.span = self.tracing.start("rankstack.queue", trace, documents=len(job.texts))
            self._queue.append(p)
            self._queued_docs += len(job.texts)
            self._cv.notify()
        return p

    def abandon(self, p: _Pending) -> None:
        """The client stopped waiting: skip the job, or cut its pass at the next chunk."""
        p.abandoned = True
        p.future.cancel()  # still queued: the worker skips it (a running future ignores this)

    @property
    def queued_docs(self) -> int:
        return self._queued_docs

    @property
    def running(self) -> int:
        """Requests in the pass the model is running now."""
        return len(self._running)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker: the server has drained, so every job left has no client waiting (it is
        abandoned: a running pass stops at its next chunk); then wait for the worker."""
        with self._cv:
            self._closed = True
            for p in [*self._queue, *self._running]:
                self.abandon(p)
            self._cv.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the model is still in a chunk of work after %s s; exiting anyway", timeout)

    # --- the worker's side --------------------------------------------------------------------------
    def _take(self) -> list[_Pending] | None:
        with self._cv:
            while not self._queue:
                if self._closed:
                    return None
                self._cv.wait()
            deadline = self._queue[0].arrived + self.max_wait
            while self._queued_docs < self.max_batch_docs and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            batch, docs = [], 0
            while self._queue and (not batch or docs + len(self._queue[0].job.texts) <= self.max_batch_docs):
                p = self._queue.popleft()
                self._queued_docs -= len(p.job.texts)
                telemetry.end(p.span, abandoned=p.abandoned or None)
                if p.future.set_running_or_notify_cancel():  # False: abandoned while waiting, skip it
                    batch.append(p)
                    docs += len(p.job.texts)
            self._running = batch
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            batch = [p for p in batch if self._prepare(p)]
            if batch:
                t0, work0 = time.perf_counter(), self.model_requests
                spans = [self.tracing.start("rankstack.model_pass", p.trace, requests=len(batch),
                                            documents=sum(len(p.job.texts) for p in batch)) for p in batch]
                self._answer(batch)
                for s, p in zip(spans, batch):
                    telemetry.end(s, model_requests=self.model_requests - work0, abandoned=p.abandoned or None)
                if self.on_batch:
                    self.on_batch(len(batch), sum(len(p.job.texts) for p in batch), time.perf_counter() - t0)
            with self._cv:
                self._running = []

    def _prepare(self, p: _Pending) -> bool:
        """Apply the limits to the job (query cut or 413, texts cut as ``service_texts`` says); False
        when the job failed them (its future holds the error)."""
        job, lim, tok = p.job, self.limits, self.tokens
        truncate = lim.truncate if job.truncate is None else job.truncate
        try:
            query = job.query
            if len(query) > lim.max_chars:
                if not truncate:
                    raise InputTooLong(f"query: {len(query)} characters; the limit is {lim.max_chars}")
                query = query[-lim.max_chars:] if job.truncate_left else query[:lim.max_chars]
            n = tok.count(query)
            if n > lim.max_tokens:
                if not truncate:
                    raise InputTooLong(f"query: {n} tokens; the limit is {lim.max_tokens}")
                query, n = tok.cut(query, lim.max_tokens, job.truncate_left), lim.max_tokens
            # Cohere's max_tokens_per_doc and TEI's truncate=true cut; a chunking server scores the rest whole
            texts, _ = service_texts(self.reranker, query, job.texts, job.max_tokens_per_doc, job.truncate)
            counts = [tok.count(t) for t in texts]
            if not truncate and lim.doc_tokens and getattr(self.reranker, "chunking", None) is None:
                for i, c in enumerate(counts):
                    if c > lim.doc_tokens:
                        raise InputTooLong(f"texts.{i}: {c} tokens; the limit is {lim.doc_tokens}")
        except InputTooLong as e:
            p.future.set_exception(e)
            return False
        p.job = RerankJob(query, texts, job.top_n, None, job.instruction, job.truncate, job.truncate_left)
        p.tokens = n + sum(counts)
        return True

    def _answer(self, batch: list[_Pending]) -> None:
        """Run the batch as one pass, dropping abandoned jobs and isolating a failing one."""
        with self._pass_hooks():
            self._settle(batch)
        for p in batch:
            if not p.future.done():
                p.future.set_exception(Abandoned("the client stopped waiting"))

    def _settle(self, live: list[_Pending]) -> None:
        while live:
            self._live = live
            try:
                for p, a in zip(live, self._run(live)):
                    p.future.set_result(a)
                return
            except _PassCut:
                live = [p for p in live if not p.abandoned]
            except Exception as e:  # noqa: BLE001 - one failing request must not fail its neighbours
                if len(live) == 1:
                    log.error("rerank failed: %s", type(e).__name__)  # the message may quote request text
                    log.debug("rerank failure", exc_info=True)
                    live[0].future.set_exception(e)
                    return
                log.warning("a merged pass of %d requests failed (%s); running them one by one", len(live),
                            type(e).__name__)
                for p in live:
                    self._settle([p])
                return

    @contextmanager
    def _pass_hooks(self):
        """During a pass, the reranker's model calls are counted and stop once one of the pass's
        jobs is abandoned; without a cache of its own it gets one in memory for the pass (a rerun
        within the pass recomputes nothing)."""
        rr = self.reranker
        saved = {k: rr.__dict__[k] for k in ("execute", "cache") if k in rr.__dict__}
        memory = None
        if isinstance(rr, Reranker):
            inner = rr.execute

            def execute(requests):
                if any(p.abandoned for p in self._live):
                    raise _PassCut()
                out = inner(requests)
                self.model_requests += len(requests)
                if self.on_model:
                    self.on_model(len(requests))
                return out

            rr.execute = execute
            if getattr(rr, "cache", None) is None:
                memory = rr.cache = ScoreCache(":memory:")
        try:
            yield
        finally:
            if memory is not None:
                memory.close()
            for k in ("execute", "cache"):
                rr.__dict__.pop(k, None)
            rr.__dict__.update(saved)

    def _run(self, batch: list[_Pending]) -> list[Scored]:
        """One engine pass over every job of the batch; each job's ranking becomes a :class:`Scored`."""
        rr = self.reranker
        qids = [f"req{next(self._seq)}" for _ in batch]
        docs = {q: [Doc(str(i), t) for i, t in enumerate(p.job.texts)] for q, p in zip(qids, batch)}
        queries = {q: Query(q, p.job.query, p.job.instruction) for q, p in zip(qids, batch)}
        if isinstance(rr, Reranker):
            rankings, _ = rerank_queries(rr, queries, docs)
        else:  # any object with rerank(query, docs) (e.g. a RemoteReranker in front of another server)
            rankings = {q: rr.rerank(queries[q], docs[q]) for q in qids}
        out = []
        for q, p in zip(qids, batch):
            r = rankings[q]
            out.append(Scored([int(d.docid) for d in r.docs], [d.score for d in r.docs], relevance_scores(rr, r),
                              p.tokens))
        return out
