"""The engine every reranking paradigm shares (see ``docs/engine.md``).

A paradigm writes its per-query logic once, as a generator *program*: it yields a list of
requests (prompts to score, to complete, pairs to score, texts to embed), receives their
results, and finally returns the query's :class:`~rankstack.types.Ranking`. The engine runs the
programs of many queries in lockstep, so the pending requests of every query go to the backend
together, answered from the SQLite cache where possible and committed chunk by chunk, so an
interrupted run resumes where it stopped:

    def program(self, query, docs, counts):
        rows = yield [LogprobRequest(prompt(query, d), ("yes", "no")) for d in docs]
        return Ranking.from_scores(query.qid, [(d.docid, r[0] - r[1]) for d, r in zip(docs, rows)])

The API, lowest level first:

- :func:`run_programs` (programs, execute, cache) -> ``(results, EngineStats)``: any programs.
- :func:`rerank_queries` (reranker, queries, docs) -> ``(rankings, EngineStats)``: one pass of a
  reranker (document preparation, programs, fusion); what ``Reranker.rerank`` and the serving
  batcher call.
- :func:`rerank_rankings` (reranker, first-stage rankings, queries, corpus, depth): one block of
  a run, the tail below ``depth`` kept; what the streaming engine and the Ray actors call.
- :func:`execute_requests`: one round of requests through the cache (also used by synthetic
  query generation); :func:`drive_program`: one program answered by a function (tests, replays).
- :class:`EngineStats`: the counts every call returns (mergeable; ``as_dict`` is the form a
  run's metadata carries).
"""

from rankstack.rerankers.engine.requests import (EmbedRequest, GenerateRequest, LikelihoodRequest, LogprobRequest,
                                                 PairRequest, Program, Request, RequestBase)
from rankstack.rerankers.engine.rerank import rerank_queries, rerank_rankings
from rankstack.rerankers.engine.run import Execute, drive_program, execute_requests, run_programs
from rankstack.rerankers.engine.stats import EngineStats

__all__ = ["EmbedRequest", "EngineStats", "Execute", "GenerateRequest", "LikelihoodRequest", "LogprobRequest",
           "PairRequest", "Program", "Request", "RequestBase", "drive_program", "execute_requests", "rerank_queries",
           "rerank_rankings", "run_programs"]
