"""Runs of any size: queries reranked block by block, each finished block appended to the output.

    rr.rerank_run(run, queries, corpus, depth=100, block_queries=200)            # -> Run, in memory
    rr.rerank_run_to_file("bm25.trec", queries, corpus, "out.trec", depth=100)    # -> summary dict
    rr.rerank_run_to_file(..., engine=RayEngine(workers=4, gpus_per_worker=1))    # the same, on Ray

**Input** is a :class:`~rankstack.types.Run` or a TREC run file, read block by block
(:func:`rankstack.data.trec.run_groups`: each query's lines together, as TREC tools write
them; a file that is not grouped stops with the line where a query comes back and the
``sort`` command that fixes it). **A block** is ``block_queries`` queries: their passages are
fetched, their programs driven in lockstep through one engine pass (batching and the cache work
across the block), and their rankings written; memory holds one block, so it does not grow
with the number of queries (:func:`default_block_queries`: about 20,000 candidates a block).

**Output and resume** (:func:`rerank_to_file`): each finished block is appended to the output
file and flushed. While the output is unfinished a marker ``OUT.resume.json`` beside it names
what writes it (the reranker's fingerprint, the depth, the input); a run restarted with the
same command finds the marker, keeps the queries already in ``OUT`` (a block cut short by the
kill is cut off), and reranks the rest, taking from the SQLite cache every model output that
was committed before the kill. Without the marker (a finished output, or another command's) the
output is written from the start. The file ends up identical to an uninterrupted run's.

**Engines** run the blocks: :class:`LocalEngine` in this process (the default), or
:class:`rankstack.rerankers.ray_engine.RayEngine` on a Ray cluster.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rankstack.data.corpus import DocStore
from rankstack.data.trec import check_tag, format_ranking, run_groups
from rankstack.errors import FormatError, RankstackError
from rankstack.rerankers.engine import EngineStats, rerank_rankings
from rankstack.types import Query, Ranking, Run

log = logging.getLogger(__name__)

#: candidates per block when ``block_queries`` is not given (passages, prompts and results of
#: one block are what the engine holds in memory)
BLOCK_CANDIDATES = 20_000


def default_block_queries(depth: int) -> int:
    """Queries per block for a depth: about ``BLOCK_CANDIDATES`` candidates a block.

    Args:
        depth: candidates per query.

    Returns:
        The block size (>= 1).
    """
    return max(1, BLOCK_CANDIDATES // max(1, depth))


class RunSource:
    """The queries to rerank, in order: an in-memory :class:`Run` or a TREC run file (read one
    query at a time).

    Args:
        run: a Run (or ``{qid: Ranking}``) or a run file path.
        limit: only the first ``limit`` queries.
        start: where to begin (a byte offset of the file, or an index into the run), as
            :meth:`entries` reports it.

    Raises:
        FileNotFoundError: no such run file.
        RankstackError: neither a run nor a path.
    """

    def __init__(self, run: Run | Mapping[str, Ranking] | str | os.PathLike, limit: int | None = None,
                 start: int = 0):
        if isinstance(run, (str, os.PathLike)):
            self.path: str | None = str(run)
            self.run = None
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"run file not found: {self.path}")
        elif isinstance(run, Mapping):
            self.path, self.run = None, run
        else:
            raise RankstackError(f"a run to rerank is a Run or a TREC run file path, not {type(run).__name__}")
        self.limit = limit
        self.start = start

    @property
    def name(self) -> str:
        return Path(self.path).stem if self.path else getattr(self.run, "name", "run")

    def __len__(self) -> int:
        """Queries left (an in-memory run only)."""
        if self.run is None:
            raise TypeError("a run file's length is unknown until read")
        n = max(0, len(self.run) - self.start)
        return n if self.limit is None else min(n, self.limit)

    def entries(self) -> Iterator[tuple[Ranking, int]]:
        """The queries with their positions.

        Returns:
            An iterator of ``(ranking, position after it)`` per query, in order.
        """
        if self.limit is not None and self.limit <= 0:
            return
        if self.run is not None:
            items = itertools.islice(self.run.values(), self.start, None)
            for i, r in enumerate(items, self.start + 1):
                yield r, i
                if self.limit is not None and i - self.start >= self.limit:
                    return
            return
        for n, g in enumerate(run_groups(self.path, self.start), 1):
            yield g.ranking(self.path), g.end
            if self.limit is not None and n >= self.limit:
                return

    def rankings(self) -> Iterator[Ranking]:
        """The queries' first-stage rankings.

        Returns:
            An iterator of rankings, in order.
        """
        return (r for r, _ in self.entries())

    def blocks(self, n: int | None) -> Iterator[list[Ranking]]:
        """The rankings in blocks.

        Args:
            n: rankings per block (None: all in one block).

        Returns:
            An iterator of lists of rankings.
        """
        it = self.rankings()
        while True:
            block = list(itertools.islice(it, n)) if n else list(it)
            if not block:
                return
            yield block
            if not n:
                return

    def skip(self, done: int, position: int) -> RunSource:
        """The same source without its first ``done`` queries.

        Args:
            done: queries already done.
            position: where they end (as :meth:`entries` reports it).

        Returns:
            A new source.
        """
        limit = None if self.limit is None else self.limit - done
        return RunSource(self.path or self.run, limit=limit, start=position)

    def identity(self) -> dict:
        """What names this input in a resume marker.

        Returns:
            The file (path, size, mtime) or a digest of the run, with ``start`` and ``limit``.
        """
        if self.path:
            st = os.stat(self.path)
            ident: dict[str, Any] = {"file": os.path.abspath(self.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        else:
            h = hashlib.sha1()
            for r in self.run.values():
                h.update(r.qid.encode() + b"\x1d" + "\x1f".join(r.docids).encode() + b"\x1e")
            ident = {"run_digest": h.hexdigest(), "queries": len(self.run)}
        return {**ident, "start": self.start, "limit": self.limit}


@dataclass
class RunJob:
    """A run to rerank block by block: what an engine (:class:`LocalEngine`, ``RayEngine``) runs.

    Attributes:
        source: the queries in order (:class:`RunSource`).
        queries: ``{qid: Query}``, their texts.
        corpus: the passages' texts.
        depth: candidates reranked per query.
        block_queries: queries per engine pass (None: all at once).
        reranker: the reranker, or None with ``factory``.
        factory: a picklable callable that builds the reranker where it runs (Ray actors).
        progress: show progress bars.
    """

    source: RunSource
    queries: Mapping[str, Query]
    corpus: DocStore
    depth: int
    block_queries: int | None
    reranker: Any = None
    factory: Callable[[], Any] | None = None
    progress: bool = True

    def build(self):
        """The reranker (built from ``factory`` on first use).

        Returns:
            The job's reranker.
        """
        if self.reranker is None:
            if self.factory is None:
                raise RankstackError("a rerank job needs a reranker or a factory that builds one")
            self.reranker = self.factory()
        return self.reranker


class LocalEngine:
    """Blocks run one after the other in this process (the default engine)."""

    def run(self, job: RunJob) -> Iterator[tuple[list[Ranking], EngineStats]]:
        """Rerank ``job`` block by block (:func:`~rankstack.rerankers.engine.rerank_rankings`).

        Args:
            job: the run to rerank.

        Yields:
            ``(rankings, stats)`` per block, in input order.
        """
        rr = job.build()
        for block in job.source.blocks(job.block_queries):
            yield rerank_rankings(rr, block, job.queries, job.corpus, job.depth)


def rerank_blocks(job: RunJob, engine=None) -> Iterator[tuple[list[Ranking], EngineStats]]:
    """Run ``job`` on ``engine``, with a progress bar over queries and a log line per block.

    Args:
        job: the run to rerank.
        engine: anything with ``run(job)`` yielding ``(rankings, EngineStats)`` per block
            (default :class:`LocalEngine`).

    Yields:
        Every block's rankings (input order) and engine counts.
    """
    engine = engine or LocalEngine()
    try:
        total = len(job.source)
    except TypeError:
        total = None
    bar = tqdm(total=total, desc="rerank queries", unit="q", disable=not job.progress)
    done = 0
    try:
        for i, (ranked, stats) in enumerate(engine.run(job)):
            done += len(ranked)
            bar.update(len(ranked))
            log.info("block %d: %d queries (%d so far): %d requests, %d to the model, %d from the cache",
                     i, len(ranked), done, stats.requests, stats.model_requests, stats.cache_hits)
            yield ranked, stats
    finally:
        bar.close()


# --- output file + resume ------------------------------------------------------------------
def marker_path(out) -> str:
    """The resume marker of an output file.

    Args:
        out: the output TREC file.

    Returns:
        ``OUT.resume.json``.
    """
    return f"{out}.resume.json"


def _resume_point(source: RunSource, out: str) -> tuple[int, int, int]:
    """Walk the output beside the input: ``(queries already complete, input position after
    them, output bytes to keep)``. A query counts when the output holds all its lines (as many
    as the input has candidates), newline-terminated, in input order."""
    done, position, keep = 0, source.start, 0
    outs = run_groups(out)
    try:
        for ranking, after in source.entries():
            g = next(outs, None)
            if g is None or g.qid != ranking.qid or len(g.lines) != len(ranking) or not g.complete:
                break
            done, position, keep = done + 1, after, g.end
    except FormatError as e:  # a torn line can look like anything: keep what came before it
        log.warning("resume: %s; keeping the %d complete queries before it", e, done)
    return done, position, keep


def rerank_to_file(job: RunJob, out, *, identity: str, tag: str, engine=None, resume: bool = True) -> dict:
    """Rerank ``job`` into the TREC file ``out`` block by block (see the module docstring for resume).

    Args:
        job: the run to rerank.
        out: the output TREC file.
        identity: what produces the output (a reranker fingerprint); a marker with another
            identity, depth or input means another command: the output starts over.
        tag: the run tag written on every line.
        engine: where the blocks run (default :class:`LocalEngine`).
        resume: continue an output this same command left unfinished.

    Returns:
        The summary: ``queries``, ``docs``, ``resumed_queries``, the engine's counts
        (:meth:`EngineStats.as_dict`) and ``wall_seconds``.
    """
    out = str(out)
    check_tag(tag)
    if job.source.path and os.path.abspath(out) == os.path.abspath(job.source.path):
        raise RankstackError(f"the output {out} is the input run: give another --out")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    marker = marker_path(out)
    want = {"identity": identity, "depth": job.depth, "tag": tag, "input": job.source.identity()}
    resumed = 0
    if resume and os.path.exists(out) and os.path.exists(marker):
        try:
            have = json.loads(Path(marker).read_text())
        except (OSError, json.JSONDecodeError):
            have = None
        if have == want:
            resumed, position, keep = _resume_point(job.source, out)
            os.truncate(out, keep)
            job.source = job.source.skip(resumed, position)
            log.info("resuming %s: %d queries already there, %d bytes kept", out, resumed, keep)
        else:
            log.warning("%s was written by another command (its %s differs): starting it over", out, marker)
    if not resumed:
        open(out, "w").close()
    Path(marker).write_text(json.dumps(want))
    t0 = time.perf_counter()
    stats = EngineStats()
    queries = docs = 0
    with open(out, "a", encoding="utf-8") as f:
        for ranked, st in rerank_blocks(job, engine):
            f.write("".join(format_ranking(r, tag) for r in ranked))
            f.flush()
            stats.merge(st)
            queries += len(ranked)
            docs += sum(min(job.depth, len(r)) for r in ranked)
    os.remove(marker)
    stats.wall_seconds = time.perf_counter() - t0
    return {"queries": queries, "docs": docs, "resumed_queries": resumed, **stats.as_dict()}
