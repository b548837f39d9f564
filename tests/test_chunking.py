"""Long documents: chunks, MaxP/first/mean/sum aggregation, counts in the run's metadata
(rankstack.rerankers.chunking), on a tiny config-built LM (QLM), the real MiniLM and DL19."""

from __future__ import annotations

import pytest

from rankstack.cli import main
from rankstack.data.corpus import InMemoryDocStore
from rankstack.data.trec import read_run_metadata, write_run
from rankstack.errors import RankstackError
from rankstack.rerankers import load_reranker
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.chunking import Chunking, aggregate, best_chunks, split_text, token_spans
from rankstack.types import Doc, Query, Ranking, Run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUERY = "what is a lobster roll"


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    model, tok = tiny_lm
    return HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)


@pytest.fixture(scope="module")
def dense():
    return load_reranker("dense", model="minilm-l6", cache=False, progress=False)


def _doc_of_tokens(tok, n: int) -> str:
    words = ("lobster", "roll", "bun", "maine", "butter", "market", "rates", "bank", "river", "stone")
    text, i = "", 0
    while len(token_spans(tok, text)) < n:
        text += ("" if not text else " ") + words[i % len(words)] + str(i)
        i += 1
    spans = token_spans(tok, text)
    return text[: spans[n - 1][1]]


def test_windows_overlap_and_the_last_one_ends_at_the_end():
    text = "a b c d e f g h i j"
    spans = token_spans(None, text)  # no tokenizer: whitespace words
    assert split_text(text, spans, 4, 2) == ["a b c d", "c d e f", "e f g h", "g h i j"]
    assert split_text(text, spans, 4, 3) == ["a b c d", "d e f g", "g h i j"]
    assert split_text(text, spans, 10, 5) == [text]


def _rerank_counted(rr, docs):
    """One query through the public engine: its ranking and the pass's counts."""
    from rankstack.rerankers.engine import rerank_queries
    from rankstack.types import Query

    rankings, stats = rerank_queries(rr, {"q": Query("q", QUERY)}, {"q": docs})
    return rankings["q"], stats.as_dict()


def test_a_document_of_three_times_the_cap_scores_as_the_max_of_its_chunks(tiny):
    cap = 12
    text = _doc_of_tokens(tiny.tokenizer, 3 * cap)
    spans = token_spans(tiny.tokenizer, text)
    thirds = [text[spans[k * cap][0]: spans[k * cap + cap - 1][1]] for k in range(3)]  # by hand
    chunked = load_reranker("pointwise", backend=tiny, method="qlm", cache=False, progress=False,
                            chunk_tokens=cap, chunk_stride=cap)
    whole = load_reranker("pointwise", backend=tiny, method="qlm", cache=False, progress=False, max_doc_tokens=None)
    got, stats = _rerank_counted(chunked, [Doc("long", text)])
    assert stats["docs_chunked"] == 1 and stats["chunks"] == 3
    each = whole.rerank(QUERY, [Doc(str(k), t) for k, t in enumerate(thirds)]).scores()
    assert got.scores()["long"] == pytest.approx(max(each.values()), abs=1e-6)
    assert len(set(round(v, 6) for v in each.values())) == 3  # the max is a real choice among three
    for how, want in (("first", each["0"]), ("mean", sum(each.values()) / 3), ("sum", sum(each.values()))):
        rr = load_reranker("pointwise", backend=tiny, method="qlm", cache=False, progress=False,
                           chunk_tokens=cap, chunk_stride=cap, aggregate=how)
        ranking, stats = _rerank_counted(rr, [Doc("long", text)])
        assert ranking.scores()["long"] == pytest.approx(want, abs=1e-5)
        if how == "first":
            assert stats["chunks"] == 1  # FirstP scores the first chunk only


def test_chunk_counts_and_truncation_counts_are_in_the_run_metadata(dense):
    lobster = "A lobster roll is a sandwich of lobster meat on a grilled bun. "
    long_doc = Doc("long", "The central bank raised rates again on Monday. " * 40 + lobster)
    docs = InMemoryDocStore([long_doc, Doc("short", lobster)])
    run = Run({"q1": Ranking.from_order("q1", ["long", "short"])}, name="first")
    queries = {"q1": Query("q1", QUERY)}
    chunked = load_reranker("dense", model="minilm-l6", encoder=dense.encoder, cache=False, progress=False,
                            chunk_tokens=64)
    out = chunked.rerank_run(run, queries, docs, depth=10)
    md = out.metadata
    assert md["docs_chunked"] == 1 and md["chunks"] > 3 and "docs_truncated" not in md
    plain = load_reranker("dense", model="minilm-l6", encoder=dense.encoder, cache=False, progress=False)
    out2 = plain.rerank_run(run, queries, docs, depth=10)
    md2 = out2.metadata
    assert md2["docs_truncated"] == 1 and "docs_chunked" not in md2  # cut at 256 word pieces, counted
    # the lobster sentence lies past the cut: only the chunked run sees it (recorded: 0.27 vs -0.09)
    assert out["q1"].scores()["long"] > out2["q1"].scores()["long"] + 0.2


def test_cli_flags_chunk_and_write_the_counts(tmp_path, dl19):
    run = tmp_path / "bm25.trec"
    first = sorted(dl19.run)[0]
    write_run(Run({first: dl19.run[first].top(5)}, name="bm25"), run)
    out = tmp_path / "dense.trec"
    assert main(["rerank", "--run", str(run), "--queries", "dl19", "--corpus", "dl19", "--out", str(out),
                 "--reranker", "dense", "--model", "minilm-l6", "--no-cache", "--no-progress",
                 "--chunk-tokens", "16", "--chunk-stride", "8", "--aggregate", "mean"]) == 0
    md = read_run_metadata(out)
    assert md["docs_chunked"] >= 1 and md["chunks"] > md["docs_chunked"]


def test_listwise_style_rerankers_take_the_best_chunk_by_bm25():
    pieces = [["the bank raised rates", "a lobster roll on a bun", "river stones"], ["only one chunk"],
              ["nothing shared", "at all here"]]
    assert best_chunks(QUERY, pieces) == [1, 0, 0]


def test_bad_chunk_options_are_clear_errors():
    with pytest.raises(RankstackError, match="aggregate must be one of"):
        Chunking.make(64, None, "median")
    with pytest.raises(RankstackError, match="chunk_stride must be in"):
        Chunking.make(64, 65)
    with pytest.raises(RankstackError, match="needs chunk_tokens"):
        Chunking.make(None, 8)
    assert Chunking.make(64) == Chunking(64, 32, "max")
    assert aggregate([1.0, 3.0, 2.0], "max") == 3.0


def test_the_first_stage_indexes_passages_and_scores_documents_by_their_best(tmp_path):
    from rankstack.retrieval.base import read_manifest
    from rankstack.retrieval.bm25 import BM25Retriever
    from rankstack.retrieval.chunked import ChunkedRetriever, wrap_if_chunked
    from rankstack.retrieval.registry import load_retriever

    filler = " ".join(f"word{i}" for i in range(60))
    docs = [Doc("long", filler + " lobster roll sandwich " + filler), Doc("short", "a lobster"),
            Doc("other", "rates rose on monday")]
    r = ChunkedRetriever.from_corpus(docs, Chunking(20, 10),
                                     lambda ds: BM25Retriever.from_corpus(ds, show_progress=False))
    assert r.docs_chunked == 1 and len(r) > 3
    run = r.retrieve({"q": QUERY}, k=2)
    assert run["q"].docids == ["long", "short"]  # the passage holding "lobster roll" wins; whole, it would be diluted
    assert run.metadata["docs_chunked"] == 1 and run.metadata["chunking"]["tokens"] == 20
    r.save(tmp_path / "idx")
    again = wrap_if_chunked(load_retriever(tmp_path / "idx"), read_manifest(tmp_path / "idx"))
    assert again.retrieve({"q": QUERY}, k=2) == run


def test_service_caps_map_onto_the_rerankers_chunking(dense):
    from rankstack.rerankers.chunking import service_texts

    long_text = "The central bank raised rates again on Monday. " * 40
    texts, cut = service_texts(dense, QUERY, [long_text, "short"], max_tokens_per_doc=16)
    assert cut == 1 and len(dense.encoder.tokenizer(texts[0], add_special_tokens=False)["input_ids"]) == 16
    assert service_texts(dense, QUERY, [long_text], truncate=False) == ([long_text], 0)  # whole: chunking decides
    cut_to_budget, n = service_texts(dense, QUERY, [long_text], truncate=True)  # what MiniLM reads in one pass
    assert n == 1 and len(dense.encoder.tokenizer(cut_to_budget[0], add_special_tokens=False)["input_ids"]) == 254


def test_a_chunking_server_scores_long_texts_by_their_best_chunk_and_truncate_by_the_first(tmp_path):
    """A real ``rankstack serve --chunk-tokens`` process: TEI ``truncate=false`` scores a long text as
    the max of its chunks (what the in-process MaxP reranker says), ``truncate=true`` as its first
    chunk (FirstP), Cohere's ``max_tokens_per_doc`` cuts before chunking; a server that does not
    chunk answers TEI's 413 for the same text."""
    from serve_support import call, start_server

    filler = "The central bank raised interest rates again on Monday, and markets fell. " * 6
    long_text = filler + "Lobster rolls are sandwiches of lobster meat in a buttered hot dog bun. " + filler
    texts = [long_text, "A guide to river stones."]
    opts = dict(model="minilm-l6", cache=False, progress=False, chunk_tokens=32)
    maxp = load_reranker("dense", **opts).rerank(QUERY, texts)
    firstp = load_reranker("dense", aggregate="first", **opts).rerank(QUERY, texts)
    assert maxp.scores()["0"] > firstp.scores()["0"] + 0.1  # the case can fail

    srv = start_server(tmp_path, "--reranker", "dense", "--model", "minilm-l6", "--threads", "1",
                       "--chunk-tokens", "32")
    plain = start_server(tmp_path, "--reranker", "dense", "--model", "minilm-l6", "--threads", "1")
    try:
        def tei(url, truncate):
            status, out = call(url, "/rerank", {"query": QUERY, "texts": texts, "truncate": truncate, "raw_scores": True})
            assert status == 200, out
            return {r["index"]: r["score"] for r in out}

        whole, cut = tei(srv.url, False), tei(srv.url, True)
        assert whole[0] == pytest.approx(maxp.scores()["0"], abs=1e-4)
        assert cut[0] == pytest.approx(firstp.scores()["0"], abs=1e-4)
        assert whole[1] == pytest.approx(cut[1], abs=1e-6)  # a short text is one chunk either way
        status, out = call(srv.url, "/v2/rerank", {"model": "m", "query": QUERY, "documents": texts,
                                                   "max_tokens_per_doc": 32})
        assert status == 200 and out["results"][-1]["index"] == 0  # cut to 32 tokens: the lobster sentence is gone
        assert call(plain.url, "/rerank", {"query": QUERY, "texts": [long_text * 3]})[0] == 413
    finally:
        assert srv.stop() == 0, srv.log_tail()
        assert plain.stop() == 0, plain.log_tail()
