"""``RemoteReranker``: a rerank server used like a local reranker, from sync or async code.

    rr = rankstack.RemoteReranker("http://127.0.0.1:8000", api_key=None)
    rr.rerank("what is a flea?", ["passage one", "passage two"], k=1)    # -> Ranking
    await rr.rerank_async("what is a flea?", ["passage one", "passage two"])
    run = rr.rerank_run(ds.run, ds.queries, ds.corpus, depth=20)          # queries sent concurrently

It speaks the Jina ``/v1/rerank`` shape, so it works against ``rankstack serve`` and any
Jina/Cohere-compatible rerank server. Scores are the server's ``relevance_score`` (in [0, 1]).
``instruction`` (per call, or a default for every call) is sent as the request's extra
``instruction`` field. HTTP through httpx (a dependency of ``openai``, so always installed).

Retries, with exponential backoff honouring ``Retry-After``: 429, 502 and 503 (nothing was
computed: the server was busy or a proxy lost it) and refused connections. Never retried: 504
and a read timeout (the work was done and dropped; retrying an overloaded server makes it
worse), any answer carrying ``x-should-retry: false``, and every other error. Every attempt has
``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from rankstack.errors import RankstackError
from rankstack.types import Doc, Query, Ranking, Run, ScoredDoc

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 502, 503)


class RemoteRerankError(RankstackError):
    """The server answered with an error (``status``, and its error ``type`` when it gave one)."""

    def __init__(self, message: str, status: int | None = None, type: str | None = None):
        super().__init__(message)
        self.status, self.type = status, type


class RemoteReranker:
    """A reranker behind HTTP (see the module docstring).

    Args:
        url: the server (``http://host:port``) or its full rerank endpoint (``.../v1/rerank``).
        api_key: sent as ``Authorization: Bearer <key>``.
        model: the ``model`` field of each request (servers that host several models need it).
        instruction: the default ``instruction`` of every request (a call's own wins).
        timeout: seconds per attempt. max_retries: further attempts after a retryable failure.
        backoff: first wait in seconds, doubled per retry. concurrency: requests in flight in
        :meth:`rerank_run` (the server merges them into shared engine passes).
    """

    name = "remote"

    def __init__(self, url: str, api_key: str | None = None, *, model: str | None = None,
                 instruction: str | None = None, timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5,
                 concurrency: int = 8):
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/rerank") else url + "/v1/rerank"
        self.api_key, self.model, self.instruction = api_key, model, instruction
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), float(backoff)
        self.concurrency = max(1, int(concurrency))
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"RemoteReranker({self.endpoint!r})"

    @staticmethod
    def relevance_score(score: float) -> float:
        """Scores already are the server's relevance scores (see :mod:`rankstack.rerankers.calibration`)."""
        return score

    # --- HTTP ------------------------------------------------------------------------------------
    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _outcome(self, answer: httpx.Response | Exception, attempt: int) -> tuple[dict | None, float]:
        """One attempt's answer -> (the JSON answer, 0) or (None, seconds to wait before the next
        attempt); raises :class:`RemoteRerankError` where no retry is due."""
        wait = self.backoff * 2 ** attempt
        last = attempt == self.max_retries
        if isinstance(answer, httpx.TimeoutException) and not isinstance(answer, httpx.ConnectTimeout):
            raise RemoteRerankError(f"{self.endpoint}: no answer within {self.timeout:g}s")
        if isinstance(answer, Exception):
            if last or not isinstance(answer, httpx.TransportError):
                raise RemoteRerankError(f"{self.endpoint}: {answer}") from None
            log.info("%s: %s, retry %d in %.1fs", self.endpoint, answer, attempt + 1, wait)
            return None, wait
        if answer.status_code < 400:
            try:
                return answer.json(), 0.0
            except ValueError:
                raise RemoteRerankError(f"{self.endpoint}: the answer is not JSON", answer.status_code) from None
        no_retry = answer.headers.get("x-should-retry", "").lower() == "false"
        if answer.status_code not in RETRY_STATUS or no_retry or last:
            raise _error(answer.status_code, answer.content, self.endpoint)
        retry_after = answer.headers.get("Retry-After", "")
        if retry_after.isdigit():
            wait = max(wait, float(retry_after))
        log.info("%s: HTTP %d, retry %d in %.1fs", self.endpoint, answer.status_code, attempt + 1, wait)
        return None, wait

    def _post(self, body: dict) -> dict:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, headers=self._headers())
        for attempt in range(self.max_retries + 1):
            try:
                answer: httpx.Response | Exception = self._client.post(self.endpoint, json=body)
            except httpx.HTTPError as e:
                answer = e
            out, wait = self._outcome(answer, attempt)
            if out is not None:
                return out
            time.sleep(wait)
        raise AssertionError("unreachable")

    async def _post_async(self, body: dict) -> dict:
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:
            for attempt in range(self.max_retries + 1):
                try:
                    answer: httpx.Response | Exception = await client.post(self.endpoint, json=body)
                except httpx.HTTPError as e:
                    answer = e
                out, wait = self._outcome(answer, attempt)
                if out is not None:
                    return out
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    # --- the reranker interface ------------------------------------------------------------------------
    def _request(self, query, docs, k, corpus, instruction) -> tuple[Query, list[Doc], dict | None]:
        q = query if isinstance(query, Query) else Query("q", str(query))
        ds = []
        for i, d in enumerate(docs):
            if isinstance(d, Doc):
                ds.append(d)
            elif isinstance(d, ScoredDoc):
                if corpus is None:
                    raise RankstackError("ScoredDoc candidates need a corpus to look their text up")
                ds.append(corpus.get(d.docid))
            elif isinstance(d, str):
                ds.append(Doc(str(i), d))
            else:
                raise RankstackError(f"candidate {i} is a {type(d).__name__}; give Doc, str or ScoredDoc")
        if not ds:
            return q, ds, None
        body = {"query": q.text, "documents": [d.full_text for d in ds], "return_documents": False}
        instruction = instruction or q.instruction or self.instruction
        for key, value in (("model", self.model), ("top_n", None if k is None else int(k)),
                           ("instruction", instruction)):
            if value is not None:
                body[key] = value
        return q, ds, body

    def _ranking(self, q: Query, ds: list[Doc], out: dict) -> Ranking:
        try:
            results = [(int(r["index"]), float(r["relevance_score"])) for r in out["results"]]
            ranked = [ScoredDoc(ds[i].docid, s) for i, s in results]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise RemoteRerankError(f"{self.endpoint}: unexpected answer ({type(e).__name__}: {e})") from None
        ranked.sort(key=lambda x: -x.score)  # stable: the server's order among ties
        return Ranking(q.qid, ranked)

    def rerank(self, query: Query | str, docs: Sequence[Doc | str | ScoredDoc], k: int | None = None,
               corpus=None, *, instruction: str | None = None) -> Ranking:
        """Rerank one query's candidates (``Doc``s, strings, or ``ScoredDoc``s with ``corpus``); the
        ranking's scores are the server's relevance scores, best first."""
        q, ds, body = self._request(query, docs, k, corpus, instruction)
        return Ranking(q.qid, []) if body is None else self._ranking(q, ds, self._post(body))

    async def rerank_async(self, query: Query | str, docs: Sequence[Doc | str | ScoredDoc], k: int | None = None,
                           corpus=None, *, instruction: str | None = None) -> Ranking:
        """:meth:`rerank` over an ``httpx.AsyncClient``: concurrent awaits are concurrent requests
        (the server merges them into shared engine passes)."""
        q, ds, body = self._request(query, docs, k, corpus, instruction)
        return Ranking(q.qid, []) if body is None else self._ranking(q, ds, await self._post_async(body))

    def rerank_run(self, run: Run, queries: Mapping[str, Query], corpus, depth: int = 100,
                   name: str | None = None) -> Run:
        """Rerank the top ``depth`` of every query, ``concurrency`` queries in flight; the rest keep
        first-stage order below them."""
        if depth <= 0:
            raise RankstackError(f"depth must be > 0, got {depth}")
        for qid in run:
            if qid not in queries:
                raise RankstackError(f"query {qid!r} of the run has no text in the queries given")

        def one(qid: str) -> Ranking:
            head = run[qid].top(depth)
            r = self.rerank(queries[qid], corpus.get_many(head.docids))
            r.qid = qid
            tail = run[qid].docs[depth:]
            return r.append_below(d.docid for d in tail) if tail else r

        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            rankings = list(pool.map(one, list(run)))
        out = Run(rankings, name=name or "remote")
        out.metadata = {"reranker": repr(self), "depth": depth, "queries": len(rankings),
                        "docs": sum(min(depth, len(run[q].docs)) for q in run),
                        "wall_seconds": round(time.perf_counter() - t0, 3)}
        if self.instruction:
            out.metadata["instruction"] = self.instruction
        return out


def _error(status: int, raw: bytes, endpoint: str) -> RemoteRerankError:
    try:
        err = json.loads(raw)["error"]
        return RemoteRerankError(f"{endpoint}: HTTP {status} {err['type']}: {err['message']}", status, err["type"])
    except (ValueError, KeyError, TypeError):
        text = raw[:200].decode("utf-8", "replace")
        return RemoteRerankError(f"{endpoint}: HTTP {status}: {text}", status)
