"""Dense retrieval with the real all-MiniLM-L6-v2 (alias minilm-l6) + FAISS, on a CACM slice."""

from __future__ import annotations

import json

import pytest

from rankstack.data import load_dataset
from rankstack.errors import IndexMismatchError, RankstackError
from rankstack.eval import evaluate
from rankstack.retrieval.base import MANIFEST
from rankstack.retrieval.registry import load_retriever
from rankstack.retrieval.bm25 import BM25Retriever
from rankstack.retrieval.dense import DenseRetriever, load_encoder
from rankstack.retrieval.fusion import rrf
from rankstack.types import Query


@pytest.fixture(scope="module")
def cacm_slice(data_dir):
    """The first 8 judged CACM queries, their relevant documents and 60 others (~140 docs)."""
    ds = load_dataset("cacm")
    qids = list(ds.judged_queries)[:8]
    rel = {d for q in qids for d in ds.qrels[q]}
    docs = [d for d in ds.corpus if d.docid in rel]
    docs += [d for d in ds.corpus if d.docid not in rel][:60]
    return {q: ds.queries[q] for q in qids}, docs, {q: ds.qrels[q] for q in qids}


@pytest.fixture(scope="module")
def encoder():
    import torch

    torch.set_num_threads(2)
    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def flat(cacm_slice, encoder):
    return DenseRetriever.from_corpus(cacm_slice[1], index="flat", encoder=encoder, show_progress=False)


def test_dense_flat_finds_relevant_docs(flat, cacm_slice):
    queries, docs, qrels = cacm_slice
    run = flat.retrieve(queries, k=100)
    m = evaluate(run, qrels, ["nDCG@10", "R@100"])
    # ~40% of the slice is relevant to some query: random order gives nDCG@10 near 0.1
    assert m["nDCG@10"] > 0.3, m
    r = run[next(iter(queries))]
    assert len(r) == 100 and r.docs[0].score <= 1.0 + 1e-5 and r.docs[0].score >= r.docs[-1].score


def test_hnsw_matches_flat_and_save_load(tmp_path, flat, cacm_slice, encoder):
    queries, docs, _ = cacm_slice
    exact = flat.retrieve(queries, k=10)
    vecs = flat.cpu_index.reconstruct_n(0, flat.cpu_index.ntotal)  # the same embeddings, not encoded twice
    hnsw = DenseRetriever.from_embeddings(vecs, list(flat.docids), encoder, index="hnsw", ef_search=256)
    approx = hnsw.retrieve(queries, k=10)
    recall = sum(len(set(approx[q].docids) & set(exact[q].docids)) for q in queries) / (10 * len(queries))
    assert recall >= 0.95
    hnsw.save(tmp_path / "h")
    flat.save(tmp_path / "f")
    m = json.loads((tmp_path / "h" / MANIFEST).read_text())
    assert m["backend"] == "dense" and m["params"]["index"] == "hnsw" and m["dim"] == 384
    assert DenseRetriever.load(tmp_path / "f", encoder=encoder).retrieve(queries, k=10) == exact
    assert load_retriever(tmp_path / "h", encoder=encoder).retrieve(queries, k=10) == approx
    with pytest.raises(IndexMismatchError, match="holds a 'dense' index"):
        BM25Retriever.load(tmp_path / "f")


def test_dense_errors_and_hybrid(flat, cacm_slice, encoder):
    queries, docs, qrels = cacm_slice
    with pytest.raises(RankstackError, match="positive integer"):
        flat.retrieve(queries, k=-1)
    with pytest.raises(RankstackError, match="appears twice"):
        flat.retrieve([Query("1", "x"), Query("1", "y")], k=5)
    with pytest.raises(RankstackError, match="empty"):
        DenseRetriever.from_corpus([], encoder=encoder)
    with pytest.raises(RankstackError, match="unknown dense index"):
        DenseRetriever.from_corpus(docs, index="ivf", encoder=encoder)
    with pytest.raises(RankstackError, match="appears twice"):
        DenseRetriever.from_embeddings(flat.cpu_index.reconstruct_n(0, 2), [docs[0].docid] * 2, encoder)
    bm25 = BM25Retriever.from_corpus(docs, show_progress=False).retrieve(queries, k=100)
    dense = flat.retrieve(queries, k=100)
    hybrid = rrf([bm25, dense])
    assert set(hybrid) == set(queries)
    assert all(set(hybrid[q].docids) == set(bm25[q].docids) | set(dense[q].docids) for q in queries)
    assert evaluate(hybrid, qrels, ["nDCG@10"])["nDCG@10"] > 0.3
