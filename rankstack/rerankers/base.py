"""The reranker interface: :class:`Reranker`, the base of every paradigm, and :class:`Fusion`.

A paradigm subclass writes :meth:`Reranker.program` (its per-query logic, a generator of
requests, see :mod:`rankstack.rerankers.engine`) and, when it runs a model of its own,
:meth:`Reranker.execute`. The public methods (:meth:`~Reranker.rerank`,
:meth:`~Reranker.rerank_run`, :meth:`~Reranker.rerank_run_to_file`) hand the programs to the
engine; the request types are importable from here as well as from the engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rankstack.data.corpus import DocStore
from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Backend
from rankstack.rerankers.cache import ScoreCache, default_cache_path
from rankstack.rerankers.engine import (EmbedRequest, EngineStats, GenerateRequest, LikelihoodRequest, LogprobRequest,
                                        PairRequest, Program, Request, rerank_queries)
from rankstack.rerankers.stream import RunJob, RunSource, default_block_queries, rerank_blocks, rerank_to_file
from rankstack.types import Doc, Query, Ranking, Run, ScoredDoc

__all__ = ["EmbedRequest", "Fusion", "GenerateRequest", "LikelihoodRequest", "LogprobRequest", "PairRequest",
           "Program", "Request", "Reranker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fusion:
    """Interpolate with the first stage: ``weight * rerank + (1 - weight) * first_stage``,
    both normalised per query (``zscore`` or ``minmax``). ERank: 0.8 with z-scores.

    Args:
        weight: the reranker's share, in [0, 1].
        norm: ``zscore`` or ``minmax``.

    Raises:
        RankstackError: a weight outside [0, 1].
    """

    weight: float = 0.8
    norm: str = "zscore"

    def __post_init__(self):
        if not 0.0 <= self.weight <= 1.0:
            raise RankstackError(f"fusion weight must be in [0, 1], got {self.weight}")


class Reranker:
    """Base of every reranker.

    A subclass sets ``name`` and ``prompt_version``, writes :meth:`program` (its per-query logic,
    run by :mod:`rankstack.rerankers.engine`) and, when it runs a model of its own rather than a
    backend, :meth:`execute`; options that change its outputs go into :meth:`params`.

    Args:
        backend: the model runner (``hf``, ``vllm``, ``openai``; see ``load_backend``), or None
            for rerankers that hold their own model.
        max_doc_tokens: passages are cut to this many tokens (None: whole).
        fusion: a :class:`Fusion`, a weight (z-score fusion with that weight), or None.
        cache: True (the default SQLite cache), a path, a ``ScoreCache``, or False/None (none).
        chunk_size: requests per backend call, each call's answers committed to the cache before
            the next (None: the backend's choice; 0: a whole round).
        progress: show progress bars.
    """

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
                 chunk_size: int | None = None, progress: bool = True, chunk_tokens: int | None = None,
                 chunk_stride: int | None = None, aggregate: str = "max",
                 instruction: str | None = None):
        from rankstack.rerankers.chunking import Chunking

        self.backend = backend
        #: the instruction of every query that brings none of its own (part of the fingerprint)
        self.instruction = instruction or None
        self.chunking = Chunking.make(chunk_tokens, chunk_stride, aggregate)
        self.max_doc_tokens = max_doc_tokens
        self.fusion = Fusion(fusion) if isinstance(fusion, (int, float)) and not isinstance(fusion, bool) else fusion
        if cache is True:
            cache = default_cache_path()
        self.cache = ScoreCache(cache) if isinstance(cache, str) else (cache or None)
        # requests per backend call, each call's answers committed to the cache before the next;
        # None: the backend's own choice (vLLM takes a whole round, hf 64), 0: a whole round
        self.chunk_size = chunk_size if chunk_size is not None else getattr(backend, "chunk_size", 64)
        self.progress = progress

    # --- what subclasses provide ------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Options that change model outputs (part of the cache fingerprint).

        Returns:
            ``{option: value}``; subclasses extend it.
        """
        return {"max_doc_tokens": self.max_doc_tokens}

    def program(self, query: Query, docs: list[Doc], stats: Counter) -> Program:
        """The per-query logic: a generator that yields lists of requests
        (:mod:`rankstack.rerankers.engine`), receives their results, and returns the ranking.

        Args:
            query: the query.
            docs: its candidates, already prepared (:meth:`prepare_doc`), in first-stage order.
            stats: a Counter shared by the pass's programs for the paradigm's own counts
                (``parse_*`` repairs and fallbacks, ``windows``, ...).

        Returns:
            The program (a generator whose return value is the query's :class:`Ranking`).
        """
        raise NotImplementedError

    def execute(self, requests: Sequence[Request]) -> list:
        """Run one homogeneous group of requests (same :meth:`group`) on the backend.

        Args:
            requests: ``LogprobRequest``, ``GenerateRequest`` or ``LikelihoodRequest``s of one group.

        Returns:
            Their results, in order (log-prob lists, completion lists).

        Raises:
            RankstackError: no backend, or a request type this reranker cannot run.
        """
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
        """What names this reranker's outputs in the cache: name, prompt version, backend, params, template.

        Returns:
            24 hex digits (same fingerprint, same outputs).
        """
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
        """Cut the passage to ``max_doc_tokens`` (the query is never cut).

        Args:
            doc: a candidate.

        Returns:
            The document as the prompts show it.
        """
        text = doc.full_text
        if self.max_doc_tokens and self.backend is not None and len(text) > self.max_doc_tokens:  # chars >= tokens
            text = self.backend.truncate(text, self.max_doc_tokens)
        return Doc(doc.docid, text)

    # --- public API ----------------------------------------------------------------------------
    def rerank(self, query: Query | str, docs: Sequence[Doc | str | ScoredDoc], k: int | None = None,
               corpus: DocStore | None = None, *, instruction: str | None = None) -> Ranking:
        """Rerank one query's candidates.

        Args:
            query: a :class:`Query` or the query text (its qid is then ``"q"``).
            docs: the candidates: :class:`Doc`s, plain strings (docids ``"0"``, ``"1"``, ...),
                or :class:`ScoredDoc`s (first-stage results; their texts come from ``corpus``
                and their scores are what :class:`Fusion` interpolates with).
            k: keep only the best ``k`` (None: all).
            corpus: where ``ScoredDoc`` texts are looked up.
            instruction: this query's task instruction (see :meth:`instruct`).

        Returns:
            The query's :class:`Ranking`, best first (empty for no candidates).

        Raises:
            RankstackError: ``ScoredDoc``s without a corpus, a candidate of another type, or a
                docid twice.
        """
        q = query if isinstance(query, Query) else Query("q", str(query))
        if instruction:
            q = Query(q.qid, q.text, instruction)
        ds, first_scores = candidate_docs(docs, corpus)
        if len({d.docid for d in ds}) != len(ds):
            raise RankstackError("duplicate docids among the candidates")
        if first_scores:  # ScoredDocs: their first-stage scores are what fusion interpolates with
            first = Ranking(q.qid, [ScoredDoc(d.docid, s) for d, s in zip(ds, first_scores)])
        else:
            first = Ranking.from_order(q.qid, [d.docid for d in ds])
        out, _ = rerank_queries(self, {q.qid: q}, {q.qid: ds}, {q.qid: first})
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

        For runs that do not fit in memory write the output block by block with
        :meth:`rerank_run_to_file`.

        Args:
            run: a :class:`Run` or a TREC run file (read block by block).
            queries: ``{qid: Query}`` for every query of the run.
            corpus: the passages' texts.
            depth: candidates reranked per query (> 0).
            name: the output run's name (default: the reranker's).
            block_queries: queries per engine pass (default: all of an in-memory run at once;
                about 20,000 candidates a block for a file).
            engine: where blocks run (default this process; ``RayEngine(...)`` for a Ray cluster).

        Returns:
            The reranked :class:`Run`; its ``metadata`` holds how it was made
            (:meth:`describe_run`), ``queries``, ``docs`` and the engine's counts
            (:meth:`EngineStats.as_dict`: requests, cache hits, model requests, parse counts,
            wall seconds).

        Raises:
            RankstackError: ``depth`` <= 0, or a query of the run without text.
        """
        if depth <= 0:
            raise RankstackError(f"depth must be > 0, got {depth}")
        source = RunSource(run)
        if block_queries is None and source.path:
            block_queries = default_block_queries(depth)
        job = RunJob(source, queries, corpus, depth, block_queries, reranker=self, progress=self.progress)
        t0 = time.perf_counter()
        out = Run(name=name or self.name.replace(" ", "_"))
        stats = EngineStats()
        docs = 0
        for ranked, st in rerank_blocks(job, engine):
            stats.merge(st)
            for r in ranked:
                out[r.qid] = r
                docs += min(depth, len(r))
        stats.wall_seconds = time.perf_counter() - t0
        out.metadata = {**self.describe_run(depth), "queries": len(out), "docs": docs, **stats.as_dict()}
        return out

    def describe_run(self, depth: int) -> dict:
        """What a run's metadata says about how it was made.

        Args:
            depth: the depth reranked.

        Returns:
            ``reranker`` (its repr), ``fingerprint``, ``depth`` and, with a model template, ``template``.
        """
        md = {"reranker": repr(self), "fingerprint": self.fingerprint(), "depth": depth}
        if self.chunking is not None:
            md["chunking"] = asdict(self.chunking)
        if self.model_template is not None:
            md["template"] = self.model_template.id
        if self.instruction:
            md["instruction"] = self.instruction
        return md

    def rerank_run_to_file(self, run: Run | str, queries: Mapping[str, Query], corpus: DocStore, out, depth: int = 100,
                           name: str | None = None, *, block_queries: int | None = None, engine=None,
                           resume: bool = True) -> dict:
        """Rerank ``run`` into the TREC file ``out``, appending each finished block (flushed).

        Memory stays that of one block. A killed call repeated with the same arguments keeps the
        queries already in ``out`` and takes the rest from the cache
        (:mod:`rankstack.rerankers.stream`).

        Args:
            run: a :class:`Run` or a TREC run file.
            queries: ``{qid: Query}`` for every query of the run.
            corpus: the passages' texts.
            out: the output TREC file (not the input).
            depth: candidates reranked per query (> 0).
            name: the run tag written in ``out`` (default: the reranker's name).
            block_queries: queries per block (default: about 20,000 candidates a block).
            engine: where blocks run (default this process; ``RayEngine(...)``).
            resume: continue an output this same command left unfinished.

        Returns:
            The summary: :meth:`describe_run`'s keys, ``queries``, ``docs``, ``resumed_queries``,
            the engine's counts (requests, model_requests, cache_hits, parse counts) and
            ``wall_seconds``.
        """
        if depth <= 0:
            raise RankstackError(f"depth must be > 0, got {depth}")
        job = RunJob(RunSource(run), queries, corpus, depth, block_queries or default_block_queries(depth),
                     reranker=self, progress=self.progress)
        from rankstack.rerankers.chunking import run_identity

        summary = rerank_to_file(job, out, identity=run_identity(self), tag=name or self.name.replace(" ", "_"),
                                 engine=engine, resume=resume)
        return {**self.describe_run(depth), **summary}


def candidate_docs(docs: Sequence[Doc | str | ScoredDoc], corpus: DocStore | None = None,
                   ) -> tuple[list[Doc], list[float] | None]:
    """The documents of one query's candidates, as :meth:`Reranker.rerank` takes them.

    Args:
        docs: :class:`Doc`s, strings (docid: the position) or :class:`ScoredDoc`s.
        corpus: where ``ScoredDoc`` texts are looked up.

    Returns:
        ``(documents, first-stage scores)``; the scores only when every candidate is a
        ``ScoredDoc`` (else None).

    Raises:
        RankstackError: ``ScoredDoc``s without a corpus, or a candidate of another type.
    """
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
    return ds, first_scores
