"""The reranker interface and the engine every paradigm shares.

A paradigm writes its per-query logic once, as a generator *program*: it yields a list of
requests (prompts to score or to complete), receives their results, and finally returns the
query's :class:`Ranking`. The engine runs the programs of all queries in lockstep, so the
pending requests of every query (window i of each query, one heap comparison of each query,
...) go to the backend together, answered from the SQLite cache where possible, committed
chunk by chunk so an interrupted run resumes where it stopped.

    def program(self, query, docs, stats):
        rows = yield [LogprobRequest(prompt(query, d), ("yes", "no")) for d in docs]
        return Ranking.from_scores(query.qid, [(d.docid, r[0] - r[1]) for d, r in zip(docs, rows)])
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rankstack.data.corpus import DocStore
from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Backend, Completion, Prompt, SamplingParams
from rankstack.rerankers.cache import ScoreCache, default_cache_path
from rankstack.types import Doc, Query, Ranking, Run, ScoredDoc

log = logging.getLogger(__name__)


# --- requests a program can yield ------------------------------------------------------
@dataclass(frozen=True)
class LogprobRequest:
    """Next-token log-probs of ``candidates`` after ``prompt``. Result: ``list[float]``."""

    prompt: Prompt
    candidates: tuple[str, ...]

    def key(self) -> str:
        return "lp\x1d" + self.prompt.key() + "\x1d" + "\x1f".join(self.candidates)

    def group(self) -> tuple:
        return ("lp", self.candidates)


@dataclass(frozen=True)
class GenerateRequest:
    """Completions of ``prompt``. Result: ``list[Completion]`` (``params.n`` of them)."""

    prompt: Prompt
    params: SamplingParams

    def key(self) -> str:
        return "gen\x1d" + self.prompt.key() + "\x1d" + json.dumps(asdict(self.params), sort_keys=True)

    def group(self) -> tuple:
        return ("gen", self.params)

    @staticmethod
    def to_json(result: list[Completion]):
        return [asdict(c) for c in result]

    @staticmethod
    def from_json(value) -> list[Completion]:
        return [Completion(**c) for c in value]


@dataclass(frozen=True)
class LikelihoodRequest:
    """Teacher-forced log-probs of ``continuation``'s tokens after ``prompt`` (query likelihood).
    Result: ``list[float]``, one per continuation token."""

    prompt: Prompt
    continuation: str

    def key(self) -> str:
        return "ll\x1d" + self.prompt.key() + "\x1d" + self.continuation

    def group(self) -> tuple:
        return ("ll",)


@dataclass(frozen=True)
class PairRequest:
    """A (query, passage) pair for a scorer that is not a causal LM (cross-encoders). Result: float."""

    query: str
    passage: str

    def key(self) -> str:
        return "pair\x1d" + self.query + "\x1d" + self.passage

    def group(self) -> tuple:
        return ("pair",)


@dataclass(frozen=True)
class EmbedRequest:
    """One text to embed with a bi-encoder (``role``: ``query`` or ``passage``, which may get
    different prefixes). Result: a float32 vector. Keyed by the text, so a passage shared by
    many queries (or many runs) is encoded once and cached once."""

    text: str
    role: str = "passage"

    def key(self) -> str:
        return "emb\x1d" + self.role + "\x1d" + self.text

    def group(self) -> tuple:
        return ("emb", self.role)

    @staticmethod
    def to_json(result) -> str:  # exact float32 bytes, base64: a quarter of the size of a JSON list
        return base64.b64encode(np.asarray(result, dtype=np.float32).tobytes()).decode("ascii")

    @staticmethod
    def from_json(value) -> np.ndarray:
        return np.frombuffer(base64.b64decode(value), dtype=np.float32)


Request = LogprobRequest | GenerateRequest | LikelihoodRequest | PairRequest | EmbedRequest
Program = Generator[list, list, Ranking]


@dataclass(frozen=True)
class Fusion:
    """Interpolate with the first stage: ``weight * rerank + (1 - weight) * first_stage``,
    both normalised per query (``zscore`` or ``minmax``). ERank: 0.8 with z-scores."""

    weight: float = 0.8
    norm: str = "zscore"

    def __post_init__(self):
        if not 0.0 <= self.weight <= 1.0:
            raise RankstackError(f"fusion weight must be in [0, 1], got {self.weight}")


def _to_json(req, result):
    """A result as the cache stores it (JSON); a request type with its own encoding says so."""
    enc = getattr(req, "to_json", None)
    return enc(result) if enc else result


def _from_json(req, value):
    dec = getattr(req, "from_json", None)
    return dec(value) if dec else value


class Reranker:
    """Base of every reranker. Subclasses set ``name``/``prompt_version`` and write :meth:`program`."""

    name: str = "reranker"
    prompt_version: str = "1"
    #: a picklable callable that builds this reranker again (set by ``load_reranker``): what a
    #: Ray actor calls to load its own copy
    factory: Callable[[], Reranker] | None = None
    #: the model-specific template in use (:mod:`rankstack.rerankers.templates`), if any
    model_template = None
    #: how :meth:`instruct` joins an instruction and a query where the prompt has no instruction slot
    instruction_format = "Instruct: {instruction}\nQuery: {query}"

    def __init__(self, backend: Backend | None = None, *, max_doc_tokens: int | None = 512,
                 fusion: Fusion | float | None = None, cache: bool | str | ScoreCache | None = True,
                 chunk_size: int | None = None, progress: bool = True, instruction: str | None = None):
        self.backend = backend
        #: the instruction of every query that brings none of its own (part of the fingerprint)
        self.instruction = instruction or None
        self.max_doc_tokens = max_doc_tokens
        self.fusion = Fusion(fusion) if isinstance(fusion, (int, float)) and not isinstance(fusion, bool) else fusion
        if cache is True:
            cache = default_cache_path()
        self.cache = ScoreCache(cache) if isinstance(cache, str) else (cache or None)
        # requests per backend call, each call's answers committed to the cache before the next;
        # None: the backend's own choice (vLLM takes a whole round, hf 64), 0: a whole round
        self.chunk_size = chunk_size if chunk_size is not None else getattr(backend, "chunk_size", 64)
        self.progress = progress
        self.last_stats: Counter = Counter()

    # --- what subclasses provide ------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Options that change model outputs (part of the cache fingerprint)."""
        return {"max_doc_tokens": self.max_doc_tokens}

    def program(self, query: Query, docs: list[Doc], stats: Counter) -> Program:
        raise NotImplementedError

    def execute(self, requests: Sequence[Request]) -> list:
        """Run one homogeneous group of requests on the backend."""
        first = requests[0]
        if self.backend is None:
            raise RankstackError(f"{self.name}: no backend to run {type(first).__name__}")
        if isinstance(first, LogprobRequest):
            arr = self.backend.next_token_logprobs([r.prompt for r in requests], first.candidates)
            return [[float(x) for x in row] for row in arr]
        if isinstance(first, GenerateRequest):
            return self.backend.generate([r.prompt for r in requests], first.params)
        if isinstance(first, LikelihoodRequest):
            rows = self.backend.continuation_logprobs([r.prompt for r in requests], [r.continuation for r in requests])
            return [[float(x) for x in row] for row in rows]
        raise RankstackError(f"{self.name}: cannot execute {type(first).__name__}")

    # --- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> str:
        ident = {"reranker": self.name, "prompt_version": self.prompt_version,
                 "backend": self.backend.fingerprint() if self.backend else None, "params": self.params()}
        if self.model_template is not None:
            ident["template"] = self.model_template.id
        if self.instruction:
            ident["instruction"] = self.instruction
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.fingerprint() if self.backend else ''}, {self.params()})"

    # --- per-query instructions ------------------------------------------------------------------
    def instruct(self, query: Query) -> Query:
        """The query as this reranker's prompt sees it, with its instruction (the query's own, else
        ``self.instruction``). Here, for prompts without an instruction slot (encoders, listwise,
        setwise ...): joined into the query text by :attr:`instruction_format`, so the instruction
        is part of every cache key. Pointwise puts it in its template's ``{instruction}`` slot."""
        instruction = query.instruction or self.instruction
        if not instruction:
            return query
        return Query(query.qid, self.instruction_format.format(instruction=instruction, query=query.text))

    # --- document preparation ------------------------------------------------------------------
    def prepare_doc(self, doc: Doc) -> Doc:
        """Cut the passage to ``max_doc_tokens`` (the query is never cut)."""
        text = doc.full_text
        if self.max_doc_tokens and self.backend is not None and len(text) > self.max_doc_tokens:  # chars >= tokens
            text = self.backend.truncate(text, self.max_doc_tokens)
        return Doc(doc.docid, text)

    # --- public API ----------------------------------------------------------------------------
    def rerank(self, query: Query | str, docs: Sequence[Doc | str | ScoredDoc], k: int | None = None,
               corpus: DocStore | None = None, *, instruction: str | None = None) -> Ranking:
        """Rerank one query's candidates (``Doc``s, plain strings, or ``ScoredDoc``s with ``corpus``);
        ``instruction``: this query's task instruction (see :meth:`instruct`)."""
        q = query if isinstance(query, Query) else Query("q", str(query))
        if instruction:
            q = Query(q.qid, q.text, instruction)
        ds: list[Doc] = []
        first_scores: list[float] | None = []
        for i, d in enumerate(docs):
            if isinstance(d, Doc):
                ds.append(d)
                first_scores = None
            elif isinstance(d, ScoredDoc):
                if corpus is None:
                    raise RankstackError("ScoredDoc candidates need a corpus to look their text up")
                ds.append(corpus.get(d.docid))
                if first_scores is not None:
                    first_scores.append(d.score)
            elif isinstance(d, str):
                ds.append(Doc(str(i), d))
                first_scores = None
            else:
                raise RankstackError(f"candidate {i} is a {type(d).__name__}; give Doc, str or ScoredDoc")
        if len({d.docid for d in ds}) != len(ds):
            raise RankstackError("duplicate docids among the candidates")
        if first_scores:  # ScoredDocs: their first-stage scores are what fusion interpolates with
            first = Ranking(q.qid, [ScoredDoc(d.docid, s) for d, s in zip(ds, first_scores)])
        else:
            first = Ranking.from_order(q.qid, [d.docid for d in ds])
        out = self._rerank_many({q.qid: q}, {q.qid: ds}, {q.qid: first})
        return out[q.qid].top(k)

    async def rerank_async(self, query: Query | str, docs: Sequence[Doc | str | ScoredDoc], k: int | None = None,
                           corpus: DocStore | None = None, *, instruction: str | None = None) -> Ranking:
        """:meth:`rerank` without blocking the event loop: it runs in a worker thread, one call of
        this reranker at a time (the model is not shared between threads); concurrent awaits queue
        up. (``rankstack serve`` merges concurrent requests into one pass instead.)"""
        lock = self.__dict__.setdefault("_async_lock", threading.Lock())

        def run() -> Ranking:
            with lock:
                return self.rerank(query, docs, k, corpus, instruction=instruction)

        return await asyncio.to_thread(run)

    def rerank_run(self, run: Run | str, queries: Mapping[str, Query], corpus: DocStore, depth: int = 100,
                   name: str | None = None, *, block_queries: int | None = None, engine=None) -> Run:
        """Rerank the top ``depth`` of every query; the rest keep first-stage order below them.

        ``run``: a :class:`Run` or a TREC run file (read block by block). ``block_queries``:
        queries per engine pass (default: all of an in-memory run at once; about 20,000
        candidates a block for a file). ``engine``: where blocks run (default this process;
        ``RayEngine(...)`` for a Ray cluster). For runs that do not fit in memory write the
        output block by block with :meth:`rerank_run_to_file`."""
        from rankstack.rerankers.stream import RerankJob, RunSource, default_block_queries, rerank_blocks

        if depth <= 0:
            raise RankstackError(f"depth must be > 0, got {depth}")
        source = RunSource(run)
        if block_queries is None and source.path:
            block_queries = default_block_queries(depth)
        job = RerankJob(source, queries, corpus, depth, block_queries, reranker=self, progress=self.progress)
        t0 = time.perf_counter()
        out = Run(name=name or self.name.replace(" ", "_"))
        stats: Counter = Counter(requests=0, cache_hits=0, model_requests=0)
        docs = 0
        for ranked, st in rerank_blocks(job, engine):
            stats.update(st)
            for r in ranked:
                out[r.qid] = r
                docs += min(depth, len(r))
        stats["wall_seconds"] = round(time.perf_counter() - t0, 3)
        self.last_stats = stats
        out.metadata = {**self.describe_run(depth), "queries": len(out), "docs": docs, **dict(stats)}
        return out

    def describe_run(self, depth: int) -> dict:
        """What a run's metadata says about how it was made: reranker, fingerprint, depth, template."""
        md = {"reranker": repr(self), "fingerprint": self.fingerprint(), "depth": depth}
        if self.model_template is not None:
            md["template"] = self.model_template.id
        if self.instruction:
            md["instruction"] = self.instruction
        return md

    def rerank_run_to_file(self, run: Run | str, queries: Mapping[str, Query], corpus: DocStore, out, depth: int = 100,
                           name: str | None = None, *, block_queries: int | None = None, engine=None,
                           resume: bool = True) -> dict:
        """Rerank ``run`` into the TREC file ``out``, appending each finished block of
        ``block_queries`` queries (flushed): memory stays that of one block. A killed call
        repeated with the same arguments keeps the queries already in ``out`` and takes the rest
        from the cache (``rankstack.rerankers.stream``). Returns the summary: queries, docs,
        resumed_queries, requests, model_requests, cache_hits, parse counts, wall_seconds."""
        from rankstack.rerankers.stream import RerankJob, RunSource, default_block_queries, rerank_to_file

        if depth <= 0:
            raise RankstackError(f"depth must be > 0, got {depth}")
        job = RerankJob(RunSource(run), queries, corpus, depth, block_queries or default_block_queries(depth),
                        reranker=self, progress=self.progress)
        summary = rerank_to_file(job, out, identity=self.fingerprint(), tag=name or self.name.replace(" ", "_"),
                                 engine=engine, resume=resume)
        self.last_stats = Counter({k: v for k, v in summary.items() if k not in ("queries", "docs")})
        return {**self.describe_run(depth), **summary}

    def _rerank_block(self, rankings: Sequence[Ranking], queries: Mapping[str, Query], corpus: DocStore,
                      depth: int) -> list[Ranking]:
        """One engine pass over a block of first-stage rankings: the top ``depth`` of each
        reranked, the rest kept below in first-stage order. Counts in ``self.last_stats``."""
        qs, docs, firsts = {}, {}, {}
        for ranking in rankings:
            qid = ranking.qid
            if qid not in queries:
                raise RankstackError(f"query {qid!r} of the run has no text in the queries given")
            if qid in qs:
                raise RankstackError(f"query {qid!r} appears twice in the run")
            qs[qid] = queries[qid]
            firsts[qid] = ranking.top(depth)
            docs[qid] = corpus.get_many(firsts[qid].docids)
        reranked = self._rerank_many(qs, docs, firsts)
        out = []
        for ranking in rankings:
            head = reranked[ranking.qid]
            tail = ranking.docs[depth:]
            out.append(head.append_below(d.docid for d in tail) if tail else head)
        return out

    # --- engine ----------------------------------------------------------------------------------
    def _rerank_many(self, queries: dict[str, Query], docs: dict[str, list[Doc]],
                     firsts: dict[str, Ranking]) -> dict[str, Ranking]:
        stats: Counter = Counter(requests=0, cache_hits=0, model_requests=0)  # always reported, even when 0
        prepared = {qid: [self.prepare_doc(d) for d in ds] for qid, ds in docs.items()}
        programs = {qid: self.program(self.instruct(queries[qid]), prepared[qid], stats)
                    for qid in queries if prepared[qid]}
        results = {qid: Ranking(qid, []) for qid in queries if not prepared[qid]}
        results.update(self._drive(programs, stats, queries))
        if self.fusion is not None:
            from rankstack.retrieval.fusion import interpolate_rankings

            for qid, r in results.items():
                if len(r):
                    results[qid] = interpolate_rankings([r, firsts[qid]], [self.fusion.weight, 1 - self.fusion.weight],
                                                        self.fusion.norm)
        self.last_stats = stats
        return results

    def _drive(self, programs: dict[str, Program], stats: Counter, queries) -> dict[str, Ranking]:
        results: dict[str, Ranking] = {}
        pending: dict[str, list] = {}

        def advance(qid, send):
            try:
                reqs = programs[qid].send(send)
            except StopIteration as stop:
                ranking = stop.value
                if not isinstance(ranking, Ranking):
                    raise RankstackError(f"{self.name}: program for {qid} returned {type(ranking).__name__}") from None
                results[qid] = ranking
                pending.pop(qid, None)
                return
            pending[qid] = list(reqs)

        for qid in list(programs):
            advance(qid, None)
        bar = tqdm(total=0, desc=f"rerank {self.name}", unit="req", disable=not self.progress, leave=False)
        try:
            while pending:
                flat = [(qid, r) for qid, reqs in pending.items() for r in reqs]
                bar.total += len(flat)
                bar.refresh()
                answers = self._execute_all(flat, stats, bar)
                pos = 0
                for qid in list(pending):
                    n = len(pending[qid])
                    advance(qid, answers[pos: pos + n])
                    pos += n
        finally:
            bar.close()
        return results

    def _execute_all(self, flat: list[tuple[str, Request]], stats: Counter, bar) -> list:
        return execute_requests([r for _, r in flat], self.execute, cache=self.cache, fingerprint=self.fingerprint(),
                                chunk_size=self.chunk_size, stats=stats, bar=bar, owners=[q for q, _ in flat])


def execute_requests(requests: Sequence[Request], run: Callable[[list[Request]], list], *,
                     cache: ScoreCache | None = None, fingerprint: str = "", chunk_size: int = 64,
                     stats: Counter | None = None, bar=None, owners: Sequence[str] | None = None) -> list:
    """Answer ``requests`` (in order): from ``cache`` where it holds them, else through ``run`` (one
    homogeneous group of requests -> their results), in chunks of ``chunk_size``, each chunk
    committed to the cache before the next starts (an interrupted job resumes). Identical
    requests run once. ``chunk_size`` 0 or None hands each homogeneous group to ``run`` whole
    (an engine with continuous batching wants every prompt at once). ``owners`` (a qid per request) go into the cache rows; ``stats`` counts
    requests, cache hits, model requests and generated tokens; ``bar`` (tqdm) advances per answer."""
    stats = stats if stats is not None else Counter()
    keys = [ScoreCache.digest(r.key()) for r in requests]
    owners = owners or [""] * len(requests)
    found = cache.get_many(fingerprint, list(dict.fromkeys(keys))) if cache else {}
    answers: dict[str, Any] = {k: _from_json(requests[i], found[k]) for i, k in enumerate(keys) if k in found}
    hits = sum(1 for k in keys if k in found)
    stats["requests"] += len(requests)
    stats["cache_hits"] += hits
    if bar is not None:
        bar.update(hits)
    todo: dict[tuple, list[int]] = {}
    seen: set[str] = set()
    for i, r in enumerate(requests):
        if keys[i] in answers or keys[i] in seen:
            continue
        seen.add(keys[i])
        todo.setdefault(r.group(), []).append(i)
    for idxs in todo.values():
        step = chunk_size or len(idxs)
        for s in range(0, len(idxs), step):
            chunk = idxs[s: s + step]
            out = run([requests[i] for i in chunk])
            stats["model_requests"] += len(chunk)
            if cache:
                cache.put_many(fingerprint, [(keys[i], owners[i], _to_json(requests[i], o)) for i, o in zip(chunk, out)])
            done = set()
            for i, o in zip(chunk, out):
                answers[keys[i]] = o
                done.add(keys[i])
            if bar is not None:
                bar.update(sum(1 for k in keys if k in done))
    result = [answers[k] for k in keys]
    for r, a in zip(requests, result):
        if isinstance(r, GenerateRequest):
            stats["generated_tokens"] += sum(c.num_tokens for c in a)
    return result
