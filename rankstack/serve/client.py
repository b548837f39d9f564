"""``RemoteReranker``: a rerank server used like a local reranker.

    rr = rankstack.RemoteReranker("http://127.0.0.1:8000", api_key=None)
    rr.rerank("what is a flea?", ["passage one", "passage two"], k=1)    # -> Ranking
    run = rr.rerank_run(ds.run, ds.queries, ds.corpus, depth=20)          # queries sent concurrently

It speaks the Jina ``/v1/rerank`` shape, so it works against ``rankstack serve`` and any
Jina/Cohere-compatible rerank server. Scores are the server's ``relevance_score`` (in [0, 1]).
Standard library only (no HTTP package needed). Retries with exponential backoff (honouring
``Retry-After``) on 429/502/503/504 and on connection errors; every attempt has ``timeout`` seconds.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException

from rankstack.errors import RankstackError
from rankstack.types import Doc, Query, Ranking, Run, ScoredDoc

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 502, 503, 504)


class RemoteRerankError(RankstackError):
    """The server answered with an error, or did not answer.

    Args:
        message: what went wrong (the endpoint first).
        status: the HTTP status, when there was one.
        type: the error body's ``type``, when it gave one.
    """

    def __init__(self, message: str, status: int | None = None, type: str | None = None):
        super().__init__(message)
        self.status, self.type = status, type


class RemoteReranker:
    """A reranker behind HTTP (see the module docstring).

    Args:
        url: the server (``http://host:port``) or its full rerank endpoint (``.../v1/rerank``).
        api_key: sent as ``Authorization: Bearer <key>``.
        model: the ``model`` field of each request (servers that host several models need it).
        timeout: seconds per attempt. max_retries: further attempts after a retryable failure.
        backoff: first wait in seconds, doubled per retry. concurrency: requests in flight in
        :meth:`rerank_run` (the server merges them into shared engine passes).
    """

    name = "remote"

    def __init__(self, url: str, api_key: str | None = None, *, model: str | None = None, timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 0.5, concurrency: int = 8):
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/rerank") else url + "/v1/rerank"
        self.api_key, self.model = api_key, model
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), float(backoff)
        self.concurrency = max(1, int(concurrency))

    def __repr__(self) -> str:
        return f"RemoteReranker({self.endpoint!r})"

    @staticmethod
    def relevance_score(score: float) -> float:
        """Scores already are the server's relevance scores (see :mod:`rankstack.rerankers.calibration`).

        Args:
            score: a score of a ranking this reranker returned.

        Returns:
            The same score.
        """
        return score

    # --- HTTP ------------------------------------------------------------------------------------
    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2 ** attempt
            try:
                req = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                status, raw = e.code, e.read()
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if status not in RETRY_STATUS or attempt == self.max_retries:
                    raise _error(status, raw, self.endpoint) from None
                if retry_after and retry_after.isdigit():
                    wait = max(wait, float(retry_after))
                log.info("%s: HTTP %d, retry %d in %.1fs", self.endpoint, status, attempt + 1, wait)
            except (urllib.error.URLError, ConnectionError, HTTPException) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, TimeoutError):  # retrying an overloaded server makes it worse
                    raise RemoteRerankError(f"{self.endpoint}: no answer within {self.timeout:g}s") from None
                if attempt == self.max_retries:
                    raise RemoteRerankError(f"{self.endpoint}: {reason}") from None
                log.info("%s: %s, retry %d in %.1fs", self.endpoint, reason, attempt + 1, wait)
            except TimeoutError:
                raise RemoteRerankError(f"{self.endpoint}: no answer within {self.timeout:g}s") from None
            time.sleep(wait)
        raise AssertionError("unreachable")

    # --- the reranker interface ------------------------------------------------------------------------
    def rerank(self, query: Query | str, docs: Sequence[Doc | str | ScoredDoc], k: int | None = None,
               corpus=None) -> Ranking:
        """Rerank one query's candidates on the server.

        Args:
            query: a :class:`Query` or the query text.
            docs: :class:`Doc`s, strings, or :class:`ScoredDoc`s (texts from ``corpus``).
            k: ask the server for the best ``k`` only (``top_n``).
            corpus: where ``ScoredDoc`` texts are looked up.

        Returns:
            The ranking; its scores are the server's relevance scores, best first.

        Raises:
            RankstackError: bad candidates.
            RemoteRerankError: the server failed (after the retries) or answered something unexpected.
        """
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
            return Ranking(q.qid, [])
        body = {"query": q.text, "documents": [d.full_text for d in ds], "return_documents": False}
        if self.model:
            body["model"] = self.model
        if k is not None:
            body["top_n"] = int(k)
        out = self._post(body)
        try:
            results = [(int(r["index"]), float(r["relevance_score"])) for r in out["results"]]
            ranked = [ScoredDoc(ds[i].docid, s) for i, s in results]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise RemoteRerankError(f"{self.endpoint}: unexpected answer ({type(e).__name__}: {e})") from None
        ranked.sort(key=lambda x: -x.score)  # stable: the server's order among ties
        return Ranking(q.qid, ranked)

    def rerank_run(self, run: Run, queries: Mapping[str, Query], corpus, depth: int = 100,
                   name: str | None = None) -> Run:
        """Rerank the top ``depth`` of every query, ``concurrency`` queries in flight; the rest keep
        first-stage order below them.

        Args:
            run: the first-stage run.
            queries: ``{qid: Query}``.
            corpus: the passages' texts.
            depth: candidates reranked per query (> 0).
            name: the output run's name.

        Returns:
            The reranked :class:`Run` (metadata: reranker, depth, queries, docs, wall_seconds).

        Raises:
            RankstackError: ``depth`` <= 0 or a query without text.
            RemoteRerankError: the server failed.
        """
        if depth <= 0:
            raise RankstackError(f"depth must be > 0, got {depth}")
        for qid in run:
            if qid not in queries:
                raise RankstackError(f"query {qid!r} of the run has no text in the queries given")

        def one(qid: str) -> Ranking:
            head = run[qid].top(depth)
            r = self.rerank(Query(qid, queries[qid].text), corpus.get_many(head.docids))
            tail = run[qid].docs[depth:]
            return r.append_below(d.docid for d in tail) if tail else r

        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            rankings = list(pool.map(one, list(run)))
        out = Run(rankings, name=name or "remote")
        out.metadata = {"reranker": repr(self), "depth": depth, "queries": len(rankings),
                        "docs": sum(min(depth, len(run[q].docs)) for q in run),
                        "wall_seconds": round(time.perf_counter() - t0, 3)}
        return out


def _error(status: int, raw: bytes, endpoint: str) -> RemoteRerankError:
    try:
        err = json.loads(raw)["error"]
        return RemoteRerankError(f"{endpoint}: HTTP {status} {err['type']}: {err['message']}", status, err["type"])
    except (ValueError, KeyError, TypeError):
        text = raw[:200].decode("utf-8", "replace")
        return RemoteRerankError(f"{endpoint}: HTTP {status}: {text}", status)
