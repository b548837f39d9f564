"""Drop-in adapters: any rankstack reranker (local, or a server through ``RemoteReranker``) as
the reranker of a RAG or IR framework. Each module imports its framework when it is imported
(the ``integrations`` extra installs them all); this package imports none of them.

- :mod:`rankstack.integrations.langchain`: ``RankstackRerank``, a LangChain
  ``BaseDocumentCompressor`` (for ``ContextualCompressionRetriever``); score in
  ``metadata["relevance_score"]``.
- :mod:`rankstack.integrations.llamaindex`: ``RankstackRerank``, a LlamaIndex
  ``BaseNodePostprocessor``; score in ``NodeWithScore.score``.
- :mod:`rankstack.integrations.haystack`: ``RankstackRanker``, a Haystack 2 ``@component``
  ranker; score in ``Document.score``.
- :mod:`rankstack.integrations.pyterrier`: ``RankstackReranker`` (a ``pt.Transformer`` over a
  qid/query/docno/text frame; ``score`` and ``rank`` out) and ``RankstackRetriever`` (any
  rankstack first stage, such as the Java-free bm25s BM25, as a ``pt.Transformer``).

LangChain, LlamaIndex and Haystack get the relevance in [0, 1] of
:mod:`rankstack.rerankers.calibration` (what their own rerankers give); PyTerrier gets the
reranker's raw score (what IR pipelines fuse and evaluate). Every adapter keeps the framework's
document objects and metadata and returns them in the reranker's order, cut to ``top_n``. Each
takes ``instruction=`` (the task instruction of every query it reranks: see
:meth:`rankstack.rerankers.base.Reranker.instruct`; Haystack's also per ``run``, PyTerrier's also
from an ``instruction`` column).
"""

from __future__ import annotations

from rankstack.rerankers.calibration import relevance_scores
from rankstack.types import Doc


def rerank_texts(reranker, query: str, texts: list[str], top_n: int | None = None,
                 instruction: str | None = None) -> list[tuple[int, float]]:
    """``(input index, relevance in [0, 1])`` of the best ``top_n`` texts, best first (the adapters' core)."""
    if not texts:
        return []
    docs = [Doc(str(i), t) for i, t in enumerate(texts)]
    ranking = reranker.rerank(query, docs, instruction=instruction) if instruction else reranker.rerank(query, docs)
    rel = relevance_scores(reranker, ranking)  # over the whole list: rank-based calibrations see every document
    rows = [(int(d.docid), r) for d, r in zip(ranking.docs, rel)]
    return rows if top_n is None else rows[:top_n]
