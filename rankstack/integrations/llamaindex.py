"""LlamaIndex: a rankstack reranker as a node postprocessor.

    from rankstack.integrations.llamaindex import RankstackRerank
    rr = rankstack.load_reranker("dense", model="minilm-l6")        # or rankstack.RemoteReranker(url)
    engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[RankstackRerank(reranker=rr, top_n=3)])
    nodes = RankstackRerank(reranker=rr, top_n=3).postprocess_nodes(nodes, query_str="what is a flea?")
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rankstack.integrations import rerank_texts


class RankstackRerank(BaseNodePostprocessor):
    """A LlamaIndex node postprocessor: reranks the nodes for the query with ``reranker`` and keeps
    the ``top_n`` best (all if None). The nodes are kept as they are (ids, metadata,
    relationships); ``NodeWithScore.score`` becomes the relevance in [0, 1]. The text scored is
    the node's content as embedding sees it (``MetadataMode.EMBED``), as LlamaIndex's own
    rerankers do.

    Args:
        reranker: any rankstack reranker, or a ``RemoteReranker``.
        top_n: nodes kept (None: all).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any = Field(exclude=True, description="a rankstack reranker (anything with rerank(query, docs))")
    top_n: int | None = Field(default=5, ge=1)
    instruction: str | None = Field(default=None, description="task instruction of every query")

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's serialisation name.

        Returns:
            ``"RankstackRerank"``.
        """
        return "RankstackRerank"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("RankstackRerank needs the query (query_bundle or query_str)")
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return [NodeWithScore(node=nodes[i].node, score=score)
                for i, score in rerank_texts(self.reranker, query_bundle.query_str, texts, self.top_n,
                                                 self.instruction)]
