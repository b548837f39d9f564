"""Dynamic batching: concurrent rerank requests merged into one engine pass, on one worker thread.

The engine already drives many queries in lockstep (:func:`rankstack.rerankers.engine.rerank_queries`:
window i of every query goes to the backend in one batch), so a batch of HTTP requests is simply a batch of
queries, one unique qid per request. The worker thread owns the model: it takes the first
waiting job, waits up to ``max_wait_ms`` after that job arrived for others (or until
``max_batch_docs`` documents are waiting), and runs them together. Jobs are
``concurrent.futures.Future``s: the event loop awaits them (``asyncio.wrap_future``) and never
blocks on the model; a job whose future was cancelled before the worker took it (the client
hung up, or its timeout passed) is dropped without costing model time.

If a merged pass raises, each of its jobs is run again alone, so one bad request fails alone
and its neighbours get their answers.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from rankstack.errors import RankstackError
from rankstack.rerankers.base import Reranker
from rankstack.rerankers.calibration import relevance_scores
from rankstack.rerankers.engine import rerank_queries
from rankstack.serve.schemas import RerankJob, Scored
from rankstack.types import Doc, Query

log = logging.getLogger(__name__)


class QueueFull(RankstackError):
    """More documents are waiting than the server accepts (answered 503)."""


class Closed(RankstackError):
    """The batcher is shutting down (answered 503)."""


@dataclass
class _Pending:
    job: RerankJob
    future: Future
    arrived: float = field(default_factory=time.monotonic)


def token_tools(reranker) -> tuple[Callable[[str], int], Callable[[str, int], str]]:
    """(count_tokens, truncate) with the reranker's own tokenizer: its backend's, else the
    encoder's (dense, cross-encoder), else whitespace words."""
    be = getattr(reranker, "backend", None)
    if be is not None and hasattr(be, "count_tokens") and hasattr(be, "truncate"):
        return be.count_tokens, be.truncate
    for holder in (getattr(reranker, "encoder", None), getattr(reranker, "model", None)):
        tok = getattr(holder, "tokenizer", None)
        if tok is not None:
            def ids(text: str, tok=tok) -> list[int]:
                return tok(text, add_special_tokens=False)["input_ids"]

            return (lambda text: len(ids(text))), (lambda text, n: tok.decode(ids(text)[:n]))
    return (lambda text: len(text.split())), (lambda text, n: " ".join(text.split()[:n]))


class Batcher:
    """One worker thread running ``reranker`` over merged jobs (see the module docstring).

    ``on_batch(n_requests, n_docs, seconds)`` is called after every engine pass (metrics).
    """

    def __init__(self, reranker, *, max_batch_docs: int = 256, max_wait_ms: float = 10.0,
                 max_queue_docs: int = 4096, on_batch: Callable[[int, int, float], None] | None = None):
        if max_batch_docs < 1 or max_wait_ms < 0 or max_queue_docs < 1:
            raise RankstackError("max_batch_docs and max_queue_docs must be >= 1, max_wait_ms >= 0")
        self.reranker = reranker
        self.max_batch_docs = max_batch_docs
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue_docs = max_queue_docs
        self.on_batch = on_batch
        self.count_tokens, self.truncate = token_tools(reranker)
        self._queue: deque[_Pending] = deque()
        self._queued_docs = 0
        self._cv = threading.Condition()
        self._closed = False
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._loop, name="rankstack-batcher", daemon=True)
        self._thread.start()

    # --- the event loop's side -----------------------------------------------------------------
    def submit(self, job: RerankJob) -> Future:
        fut: Future = Future()
        with self._cv:
            if self._closed:
                raise Closed("the server is shutting down")
            if self._queue and self._queued_docs + len(job.texts) > self.max_queue_docs:
                raise QueueFull(f"{self._queued_docs} documents are waiting (limit {self.max_queue_docs}); retry later")
            self._queue.append(_Pending(job, fut))
            self._queued_docs += len(job.texts)
            self._cv.notify()
        return fut

    @property
    def queued_docs(self) -> int:
        return self._queued_docs

    def close(self, timeout: float | None = None) -> None:
        """Finish the jobs already queued, then stop the worker."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout)

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
                if p.future.set_running_or_notify_cancel():  # False: cancelled while waiting, skip it
                    batch.append(p)
                    docs += len(p.job.texts)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                answers = self._run(batch)
            except Exception as e:  # noqa: BLE001 - one failing request must not fail its neighbours
                if len(batch) == 1:
                    log.error("rerank failed: %s", type(e).__name__)  # the message may quote request text
                    log.debug("rerank failure", exc_info=True)
                    batch[0].future.set_exception(e)
                    answers = None
                else:
                    log.warning("a merged pass of %d requests failed (%s); running them one by one", len(batch),
                                type(e).__name__)
                    for p in batch:
                        try:
                            p.future.set_result(self._run([p])[0])
                        except Exception as e1:  # noqa: BLE001
                            log.error("rerank failed: %s", type(e1).__name__)
                            log.debug("rerank failure", exc_info=True)
                            p.future.set_exception(e1)
            else:
                for p, a in zip(batch, answers):
                    p.future.set_result(a)
            if self.on_batch:
                self.on_batch(len(batch), sum(len(p.job.texts) for p in batch), time.perf_counter() - t0)

    def _texts(self, job: RerankJob) -> list[str]:
        if job.max_tokens_per_doc is None:
            return job.texts
        return [self.truncate(t, job.max_tokens_per_doc) for t in job.texts]

    def _run(self, batch: list[_Pending]) -> list[Scored]:
        """One engine pass over every job of the batch; each job's ranking becomes a :class:`Scored`."""
        rr = self.reranker
        qids = [f"req{next(self._seq)}" for _ in batch]
        docs = {q: [Doc(str(i), t) for i, t in enumerate(self._texts(p.job))] for q, p in zip(qids, batch)}
        if isinstance(rr, Reranker):
            queries = {q: Query(q, p.job.query) for q, p in zip(qids, batch)}
            rankings, _ = rerank_queries(rr, queries, docs)
        else:  # any object with rerank(query, docs) (e.g. a RemoteReranker in front of another server)
            rankings = {q: rr.rerank(Query(q, p.job.query), docs[q]) for q, p in zip(qids, batch)}
        out = []
        for q, p in zip(qids, batch):
            r = rankings[q]
            tokens = self.count_tokens(p.job.query) + sum(self.count_tokens(d.text) for d in docs[q])
            out.append(Scored([int(d.docid) for d in r.docs], [d.score for d in r.docs], relevance_scores(rr, r), tokens))
        return out
