"""Each framework adapter in a real small pipeline of its framework (all installed: the
``integrations`` extra), with the real all-MiniLM-L6-v2 dense reranker and real collections."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # Haystack phones home otherwise (no network here)

from rankstack.rerankers import load_reranker
from rankstack.types import Doc


@pytest.fixture(scope="module")
def dense():
    return load_reranker("dense", model="minilm-l6", cache=False, progress=False)


@pytest.fixture(scope="module")
def candidates(dl19):
    """One DL19 query and its BM25 top-20 passages."""
    qid = sorted(dl19.run)[0]
    docs = dl19.corpus.get_many(dl19.run[qid].docids[:20])
    return dl19.queries[qid].text, docs


def _expected(rr, query, texts, k):
    ranking = rr.rerank(query, [Doc(str(i), t) for i, t in enumerate(texts)])
    return [int(d) for d in ranking.docids[:k]], [(1 + d.score) / 2 for d in ranking.docs[:k]]


def test_langchain_contextual_compression_retriever(dense, candidates):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from rankstack.integrations.langchain import RankstackRerank

    query, docs = candidates

    class FirstStage(BaseRetriever):  # the BM25 candidates as a LangChain retriever
        def _get_relevant_documents(self, q: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            return [Document(page_content=d.text, metadata={"docid": d.docid, "bm25_rank": i}, id=f"lc-{d.docid}")
                    for i, d in enumerate(docs)]

    retriever = ContextualCompressionRetriever(base_compressor=RankstackRerank(reranker=dense, top_n=4),
                                               base_retriever=FirstStage())
    out = retriever.invoke(query)
    order, rel = _expected(dense, query, [d.text for d in docs], 4)
    assert [d.metadata["bm25_rank"] for d in out] == order
    assert [d.metadata["docid"] for d in out] == [docs[i].docid for i in order]
    assert [d.id for d in out] == [f"lc-{docs[i].docid}" for i in order]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(rel, abs=1e-6)
    assert order != [0, 1, 2, 3]  # the reranker changed BM25's order (else this test shows nothing)
    assert RankstackRerank(reranker=dense).compress_documents([], query) == []


def test_llamaindex_query_engine_postprocessor(dense, candidates):
    from llama_index.core import SummaryIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText
    from llama_index.core.schema import MetadataMode, TextNode

    from rankstack.integrations.llamaindex import RankstackRerank

    query, docs = candidates
    nodes = [TextNode(text=d.text, id_=f"li-{d.docid}", metadata={"docid": d.docid}) for d in docs]
    # a query engine that returns the postprocessed source nodes without generating an answer
    # (NoText never calls its LLM; it only refuses to be built without one)
    engine = RetrieverQueryEngine(retriever=SummaryIndex(nodes).as_retriever(), response_synthesizer=NoText(llm=MockLLM()),
                                  node_postprocessors=[RankstackRerank(reranker=dense, top_n=3)])
    out = engine.query(query).source_nodes
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]  # what LlamaIndex rerankers score
    order, rel = _expected(dense, query, texts, 3)
    assert [n.node.node_id for n in out] == [nodes[i].node_id for i in order]
    assert [n.node.metadata["docid"] for n in out] == [docs[i].docid for i in order]
    assert [n.score for n in out] == pytest.approx(rel, abs=1e-6)


def test_haystack_pipeline_bm25_then_rankstack(dense, candidates):
    from haystack import Document, Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from rankstack.integrations.haystack import RankstackRanker

    query, docs = candidates
    store = InMemoryDocumentStore()
    store.write_documents([Document(content=d.text, meta={"docid": d.docid}) for d in docs])
    p = Pipeline()
    p.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=10))
    p.add_component("ranker", RankstackRanker(dense, top_k=5))
    p.connect("retriever.documents", "ranker.documents")
    result = p.run({"retriever": {"query": query}, "ranker": {"query": query, "top_k": 3}}, include_outputs_from={"retriever"})
    retrieved, ranked = result["retriever"]["documents"], result["ranker"]["documents"]
    order, rel = _expected(dense, query, [d.content for d in retrieved], 3)
    assert [d.id for d in ranked] == [retrieved[i].id for i in order]
    assert [d.meta for d in ranked] == [retrieved[i].meta for i in order]
    assert [d.score for d in ranked] == pytest.approx(rel, abs=1e-6)
    with pytest.raises(ValueError):
        RankstackRanker(dense, top_k=0)


def test_pyterrier_experiment_on_vaswani_equals_rankstack_rerank(dense, tmp_path):
    """pt.Experiment over BM25 (bm25s, no Java) >> rankstack gives the nDCG@10 of
    ``rankstack rerank`` on the same candidates."""
    import pandas as pd
    import pyterrier as pt
    from ir_measures import nDCG

    from rankstack.cli import main
    from rankstack.data import load_dataset
    from rankstack.data.trec import read_run, write_run
    from rankstack.eval import evaluate
    from rankstack.integrations.pyterrier import RankstackReranker, RankstackRetriever
    from rankstack.retrieval.bm25 import BM25Retriever

    depth = 10
    ds = load_dataset("vaswani")
    bm25 = BM25Retriever.from_corpus(ds.corpus)
    first = bm25.retrieve(ds.queries, depth)
    write_run(first, tmp_path / "bm25.trec")
    assert main(["rerank", "--run", str(tmp_path / "bm25.trec"), "--queries", "vaswani", "--corpus", "vaswani",
                 "--reranker", "dense", "--model", "minilm-l6", "--depth", str(depth), "--no-cache", "--no-progress",
                 "--out", str(tmp_path / "dense.trec")]) == 0
    cli_ndcg = evaluate(read_run(tmp_path / "dense.trec"), ds.qrels, ["nDCG@10"])["nDCG@10"]

    topics = pd.DataFrame([(q.qid, q.text) for q in ds.queries.values()], columns=["qid", "query"])
    qrels = pd.DataFrame([(q, d, g) for q, docs in ds.qrels.items() for d, g in docs.items()],
                         columns=["qid", "docno", "label"])
    bm25_pt = RankstackRetriever(bm25, k=depth, corpus=ds.corpus)
    res = pt.Experiment([bm25_pt, bm25_pt >> RankstackReranker(dense)], topics, qrels, [nDCG @ 10],
                        names=["BM25", "BM25 >> dense"])
    pt_ndcg = float(res.set_index("name").loc["BM25 >> dense", "nDCG@10"])
    assert pt_ndcg == pytest.approx(cli_ndcg, abs=1e-9)
    assert float(res.set_index("name").loc["BM25", "nDCG@10"]) == pytest.approx(
        evaluate(first, ds.qrels, ["nDCG@10"])["nDCG@10"], abs=1e-9)

    # the frame keeps its columns, gets score and rank, best first, cut to top_n
    frame = bm25_pt(topics.head(2))
    out = RankstackReranker(dense, top_n=3)(frame)
    assert list(out.columns) == ["qid", "query", "docno", "text", "score", "rank"]
    assert out.groupby("qid").size().tolist() == [3, 3] and out["rank"].tolist() == [0, 1, 2, 0, 1, 2]
    no_text = RankstackReranker(dense, corpus=ds.corpus)(frame.drop(columns=["text"]))
    assert no_text["docno"].tolist()[:3] == out["docno"].tolist()[:3]
    with pytest.raises(Exception, match="text"):
        RankstackReranker(dense)(frame.drop(columns=["text"]))
