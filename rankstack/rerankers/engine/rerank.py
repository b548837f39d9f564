"""A reranker's programs through the engine: :func:`rerank_queries` (queries and their documents)
and :func:`rerank_rankings` (first-stage rankings: one block of a run)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from rankstack.data.corpus import DocStore
from rankstack.errors import RankstackError
from rankstack.rerankers.engine.run import run_programs
from rankstack.rerankers.engine.stats import EngineStats
from rankstack.types import Doc, Query, Ranking


def rerank_queries(reranker, queries: Mapping[str, Query], docs: Mapping[str, Sequence[Doc]],
                   firsts: Mapping[str, Ranking] | None = None) -> tuple[dict[str, Ranking], EngineStats]:
    """One engine pass of ``reranker`` over several queries: every query's program in lockstep.

    The documents are prepared (:meth:`Reranker.prepare_doc`; long ones chunked or cut, counted:
    :func:`rankstack.rerankers.chunking.query_program`), each query's program is built
    with a shared counts Counter, the programs run through :func:`run_programs` on the
    reranker's backend and cache, and, when the reranker has a ``fusion``, each ranking is
    interpolated with the query's first stage.

    Args:
        reranker: a :class:`~rankstack.rerankers.base.Reranker` (anything with its ``program``,
            ``execute``, ``prepare_doc``, ``fingerprint``, ``cache``, ``chunk_size``, ``fusion``,
            ``progress`` and ``name``).
        queries: ``{qid: Query}``.
        docs: ``{qid: candidates}``, each list in first-stage order.
        firsts: ``{qid: first-stage Ranking}`` for fusion (default: the order of ``docs``).

    Returns:
        ``(rankings, stats)``: ``{qid: Ranking}`` (an empty ranking for a query without
        candidates) and the pass's :class:`EngineStats`.

    Raises:
        RankstackError: a program returned something other than a :class:`Ranking`.
    """
    from rankstack.rerankers.chunking import query_program

    counts: Counter = Counter()
    instruct = getattr(reranker, "instruct", None) or (lambda q: q)  # the query's instruction joined in
    programs = {qid: query_program(reranker, instruct(queries[qid]), list(docs[qid]), counts)
                for qid in queries if docs[qid]}
    ranked, stats = run_programs(programs, reranker.execute, cache=reranker.cache, fingerprint=reranker.fingerprint(),
                                 chunk_size=reranker.chunk_size, counts=counts, progress=reranker.progress,
                                 desc=f"rerank {reranker.name}")
    results = {}
    for qid in queries:
        r = ranked.get(qid, Ranking(qid, []))
        if not isinstance(r, Ranking):
            raise RankstackError(f"{reranker.name}: program for {qid} returned {type(r).__name__}")
        results[qid] = r
    fusion = getattr(reranker, "fusion", None)
    if fusion is not None:
        from rankstack.retrieval.fusion import interpolate_rankings

        for qid, r in results.items():
            if len(r):
                first = firsts[qid] if firsts is not None else Ranking.from_order(qid, [d.docid for d in docs[qid]])
                results[qid] = interpolate_rankings([r, first], [fusion.weight, 1 - fusion.weight], fusion.norm)
    return results, stats


def rerank_rankings(reranker, rankings: Sequence[Ranking], queries: Mapping[str, Query], corpus: DocStore,
                    depth: int) -> tuple[list[Ranking], EngineStats]:
    """One engine pass over first-stage rankings (a block of a run): the top ``depth`` of each
    reranked, the rest kept below in first-stage order.

    Args:
        reranker: the reranker (see :func:`rerank_queries`).
        rankings: first-stage rankings, one per query.
        queries: ``{qid: Query}`` holding every ranking's query.
        corpus: where the candidates' texts are looked up.
        depth: candidates reranked per query.

    Returns:
        ``(rankings, stats)``: the reranked rankings in the order given, and the pass's counts.

    Raises:
        RankstackError: a query without text, or a query twice.
    """
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
    reranked, stats = rerank_queries(reranker, qs, docs, firsts)
    out = []
    for ranking in rankings:
        head = reranked[ranking.qid]
        tail = ranking.docs[depth:]
        out.append(head.append_below(d.docid for d in tail) if tail else head)
    return out, stats
