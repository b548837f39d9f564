"""Haystack 2: a rankstack reranker as a ranker component.

    from haystack import Pipeline
    from rankstack.integrations.haystack import RankstackRanker
    p = Pipeline()
    p.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=20))
    p.add_component("ranker", RankstackRanker(rankstack.load_reranker("dense", model="minilm-l6"), top_k=3))
    p.connect("retriever.documents", "ranker.documents")
    p.run({"retriever": {"query": q}, "ranker": {"query": q}})["ranker"]["documents"]
"""

from __future__ import annotations

import dataclasses

from haystack import Document, component

from rankstack.integrations import rerank_texts


@component
class RankstackRanker:
    """Ranks ``documents`` for ``query`` with ``reranker`` (any rankstack reranker, or a
    ``RemoteReranker``) and returns the ``top_k`` best (all if None). Each Document keeps its id,
    content and meta; ``score`` becomes the relevance in [0, 1], as Haystack's rankers set it.
    Documents without text content are scored on an empty string."""

    def __init__(self, reranker, top_k: int | None = 10, instruction: str | None = None):
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.reranker = reranker
        self.top_k = top_k
        self.instruction = instruction

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None, instruction: str | None = None):
        k = self.top_k if top_k is None else top_k
        if k is not None and k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        texts = [d.content or "" for d in documents]
        return {"documents": [dataclasses.replace(documents[i], score=score)
                              for i, score in rerank_texts(self.reranker, query, texts, k,
                                                           instruction or self.instruction)]}
