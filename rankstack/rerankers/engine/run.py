"""Driving programs: :func:`run_programs` (many in lockstep, through the cache) and
:func:`execute_requests` (one round of requests), plus :func:`drive_program` (one program,
answered by a function: tests and replays)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from rankstack.rerankers.cache import ScoreCache
from rankstack.rerankers.engine.requests import GenerateRequest, Program, Request, from_json, to_json
from rankstack.rerankers.engine.stats import EngineStats

#: ``execute(requests) -> results``: one homogeneous group of requests (same :meth:`group`) on a model
Execute = Callable[[list[Request]], list]


def execute_requests(requests: Sequence[Request], execute: Execute, *, cache: ScoreCache | None = None,
                     fingerprint: str = "", chunk_size: int | None = 64, stats: EngineStats | None = None,
                     bar=None, owners: Sequence[str] | None = None) -> list:
    """Answer one round of requests, in order, from the cache where it holds them, else on the model.

    Requests go to ``execute`` grouped by :meth:`group` in chunks of ``chunk_size``, each chunk
    committed to the cache before the next starts (an interrupted job resumes); identical
    requests run once.

    Args:
        requests: the round's requests, of any types.
        execute: runs one homogeneous group of requests, returning their results in order.
        cache: the SQLite cache (None: none).
        fingerprint: the cache namespace (a reranker's :meth:`fingerprint`).
        chunk_size: requests per ``execute`` call; 0 or None hands each group over whole (an
            engine with continuous batching wants every prompt at once).
        stats: where the counts go (requests, cache hits, model requests, generated tokens).
        bar: a tqdm bar advanced per answer.
        owners: a qid per request, stored in the cache rows.

    Returns:
        One result per request, in the order given.
    """
    stats = stats if stats is not None else EngineStats()
    keys = [ScoreCache.digest(r.key()) for r in requests]
    owners = owners or [""] * len(requests)
    found = cache.get_many(fingerprint, list(dict.fromkeys(keys))) if cache else {}
    answers: dict[str, Any] = {k: from_json(requests[i], found[k]) for i, k in enumerate(keys) if k in found}
    hits = sum(1 for k in keys if k in found)
    stats.requests += len(requests)
    stats.cache_hits += hits
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
            out = execute([requests[i] for i in chunk])
            stats.model_requests += len(chunk)
            if cache:
                cache.put_many(fingerprint, [(keys[i], owners[i], to_json(requests[i], o)) for i, o in zip(chunk, out)])
            done = set()
            for i, o in zip(chunk, out):
                answers[keys[i]] = o
                done.add(keys[i])
            if bar is not None:
                bar.update(sum(1 for k in keys if k in done))
    result = [answers[k] for k in keys]
    for r, a in zip(requests, result):
        if isinstance(r, GenerateRequest):
            stats.generated_tokens += sum(c.num_tokens for c in a)
    return result


def run_programs(programs: Mapping[Hashable, Program], execute: Execute, *, cache: ScoreCache | None = None,
                 fingerprint: str = "", chunk_size: int | None = 64, counts: Counter | None = None,
                 progress: bool = False, desc: str = "engine") -> tuple[dict[Hashable, Any], EngineStats]:
    """Drive every program in lockstep until each returns.

    Each round, the pending requests of all programs (window i of every query, one heap
    comparison of every query, ...) are answered together by :func:`execute_requests`, and
    each program receives its own answers.

    Args:
        programs: ``{key: program}``, a program being a generator that yields lists of requests,
            receives their results (a list, same order) and returns its value.
        execute: runs one homogeneous group of requests (a reranker's :meth:`execute`).
        cache: the SQLite cache (None: every request goes to the model).
        fingerprint: the cache namespace.
        chunk_size: requests per ``execute`` call (0 or None: a whole group at once).
        counts: the Counter the programs were given to write their own counts into (it
            becomes the returned stats' ``counts``).
        progress: show a tqdm bar over requests.
        desc: the bar's label.

    Returns:
        ``(results, stats)``: each program's return value under its key, and the pass's counts.
    """
    t0 = time.perf_counter()
    stats = EngineStats(counts=counts if counts is not None else Counter())
    results: dict[Hashable, Any] = {}
    pending: dict[Hashable, list] = {}

    def advance(key, send):
        try:
            pending[key] = list(programs[key].send(send))
        except StopIteration as stop:
            results[key] = stop.value
            pending.pop(key, None)

    for key in list(programs):
        advance(key, None)
    bar = tqdm(total=0, desc=desc, unit="req", disable=not progress, leave=False)
    try:
        while pending:
            flat = [(key, r) for key, reqs in pending.items() for r in reqs]
            bar.total += len(flat)
            bar.refresh()
            answers = execute_requests([r for _, r in flat], execute, cache=cache, fingerprint=fingerprint,
                                       chunk_size=chunk_size, stats=stats, bar=bar, owners=[str(k) for k, _ in flat])
            pos = 0
            for key in list(pending):
                n = len(pending[key])
                advance(key, answers[pos: pos + n])
                pos += n
    finally:
        bar.close()
    stats.wall_seconds = time.perf_counter() - t0
    return results, stats


def drive_program(program: Program, respond: Callable[[Request], Any]):
    """Run one program without a backend or cache: ``respond(request)`` answers each request.

    Args:
        program: a program (e.g. ``reranker.program(query, docs, counts)``).
        respond: the answer to one request (e.g. scripted completions, stored outputs).

    Returns:
        The program's return value (a reranker program's :class:`Ranking`).
    """
    try:
        requests = next(program)
        while True:
            requests = program.send([respond(r) for r in requests])
    except StopIteration as stop:
        return stop.value
