"""LangChain: a rankstack reranker as a document compressor.

    from langchain_classic.retrievers import ContextualCompressionRetriever
    from rankstack.integrations.langchain import RankstackRerank
    rr = rankstack.load_reranker("dense", model="minilm-l6")        # or rankstack.RemoteReranker(url)
    retriever = ContextualCompressionRetriever(base_compressor=RankstackRerank(reranker=rr, top_n=3),
                                               base_retriever=my_retriever)
    docs = retriever.invoke("what is a flea?")   # Documents, best first, metadata["relevance_score"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field

from rankstack.integrations import rerank_texts


class RankstackRerank(BaseDocumentCompressor):
    """A LangChain document compressor: reranks ``documents`` for ``query`` with ``reranker`` and
    keeps the ``top_n`` best (all if None). Each returned Document is a copy of the input one
    (same ``id`` and metadata) with ``metadata["relevance_score"]`` (in [0, 1]) added, as
    LangChain's rerankers do.

    Args:
        reranker: any rankstack reranker, or a ``RemoteReranker``.
        top_n: documents kept (None: all).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any = Field(description="a rankstack reranker (anything with rerank(query, docs))")
    top_n: int | None = Field(default=3, ge=1)
    instruction: str | None = Field(default=None, description="task instruction of every query")

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """Rerank and keep the best documents (LangChain's compressor entry point).

        Args:
            documents: LangChain Documents.
            query: the query text.
            callbacks: LangChain callbacks (unused).

        Returns:
            Copies of the best ``top_n`` documents with ``relevance_score`` in their metadata, best first.
        """
        docs = list(documents)
        out = []
        for i, score in rerank_texts(self.reranker, query, [d.page_content for d in docs], self.top_n,
                                     self.instruction):
            d = docs[i]
            out.append(Document(page_content=d.page_content, metadata={**d.metadata, "relevance_score": score},
                                id=d.id))
        return out
