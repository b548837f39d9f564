"""Per-query instructions and the async API: ``rerank(..., instruction=)``, ``Query.instruction``,
``instruction=`` on every reranker (fingerprint, run metadata, cache keys), ``--instruction`` on
the CLI, the adapters, ``await rerank_async`` locally and through ``RemoteReranker``."""

from __future__ import annotations

import asyncio
import json

import pytest

from rankstack.cli import main
from rankstack.data.trec import read_run_metadata
from rankstack.rerankers import load_reranker
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.engine import rerank_queries
from rankstack.rerankers.pointwise import PointwiseReranker
from rankstack.serve.client import RemoteReranker
from rankstack.types import Doc, Query

from serve_support import DOCS, KEY, QUERY

INSTRUCTION = "Given a question about insects, retrieve passages about their biology"


@pytest.fixture(scope="module")
def dense():
    return load_reranker("dense", model="minilm-l6", cache=False, progress=False)


def test_encoder_joins_the_instruction_into_the_query(dense):
    got = dense.rerank(QUERY, DOCS, instruction=INSTRUCTION)
    joined = dense.rerank(f"Instruct: {INSTRUCTION}\nQuery: {QUERY}", DOCS)
    assert [d.score for d in got.docs] == pytest.approx([d.score for d in joined.docs], abs=1e-6)
    plain = dense.rerank(QUERY, DOCS)
    assert [d.score for d in got.docs] != pytest.approx([d.score for d in plain.docs], abs=1e-3)
    assert dense.rerank(Query("q1", QUERY, INSTRUCTION), DOCS).scores() == pytest.approx(got.scores(), abs=1e-6)


def test_a_reranker_instruction_is_in_its_fingerprint_and_run_metadata(dense, dl19):
    other = load_reranker("dense", model="minilm-l6", cache=False, progress=False, instruction=INSTRUCTION)
    assert other.fingerprint() != dense.fingerprint()
    assert [d.score for d in other.rerank(QUERY, DOCS).docs] == pytest.approx(
        [d.score for d in dense.rerank(QUERY, DOCS, instruction=INSTRUCTION).docs], abs=1e-6)
    run = dl19.run.top(3)
    sub = type(run)({q: run[q] for q in list(run)[:1]}, name="bm25")
    assert other.rerank_run(sub, dl19.queries, dl19.corpus, depth=3).metadata["instruction"] == INSTRUCTION
    assert "instruction" not in dense.rerank_run(sub, dl19.queries, dl19.corpus, depth=3).metadata


def test_pointwise_puts_the_instruction_in_its_prompt_slot_and_cache_key(tiny_lm, tmp_path):
    model, tok = tiny_lm
    be = HFBackend(model="tiny", model_obj=model, tokenizer=tok)
    rr = PointwiseReranker(be, "yesno", cache=str(tmp_path / "c.sqlite"), progress=False)
    doc = Doc("a", "fleas live up to a year")
    prompt = rr.prompt(Query("q", "flea life", INSTRUCTION), doc)
    assert INSTRUCTION in prompt.key() and "Answer Yes or No" not in prompt.key() and "Instruct:" not in prompt.key()
    assert rr.instruct(Query("q", "flea life", INSTRUCTION)).text == "flea life"  # the slot takes it, not the query
    docs = [doc, Doc("b", "stock markets fell")]
    plain = rr.rerank("flea life", docs)
    instructed, stats = rerank_queries(rr, {"q": Query("q", "flea life", INSTRUCTION)}, {"q": docs})
    instructed = instructed["q"]
    assert stats.model_requests == 2 and stats.cache_hits == 0  # not the plain prompts' cache
    fixed = PointwiseReranker(be, "yesno", cache=False, progress=False, instruction=INSTRUCTION)
    assert fixed.rerank("flea life", docs).scores() == pytest.approx(instructed.scores(), abs=1e-6)
    assert instructed.scores() != pytest.approx(plain.scores(), abs=1e-6)
    assert fixed.fingerprint() != rr.fingerprint()


def test_cli_instruction_recorded_in_the_run_metadata(tmp_path, capsys, data_dir):
    out = tmp_path / "d.trec"
    argv = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "dense", "--model",
            "minilm-l6", "--depth", "3", "--queries-limit", "1", "--out", str(out), "--no-cache", "--no-progress",
            "--instruction", INSTRUCTION]
    assert main(argv) == 0
    md = read_run_metadata(str(out))
    assert md["instruction"] == INSTRUCTION and INSTRUCTION in json.dumps(md)


def test_adapters_pass_the_instruction(dense):
    from langchain_core.documents import Document

    from rankstack.integrations.langchain import RankstackRerank

    want = dense.rerank(QUERY, DOCS, instruction=INSTRUCTION)
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(DOCS)]
    out = RankstackRerank(reranker=dense, top_n=5, instruction=INSTRUCTION).compress_documents(docs, QUERY)
    assert [d.metadata["n"] for d in out] == [int(d) for d in want.docids]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([(1 + d.score) / 2 for d in want.docs],
                                                                         abs=1e-6)


def test_rerank_async_locally_and_remotely(dense, rerank_server):
    async def local():
        return await asyncio.gather(dense.rerank_async(QUERY, DOCS), dense.rerank_async(QUERY, DOCS, k=2,
                                                                                         instruction=INSTRUCTION))

    a, b = asyncio.run(local())
    assert a.docids == dense.rerank(QUERY, DOCS).docids and b.docids == dense.rerank(QUERY, DOCS, instruction=INSTRUCTION).docids[:2]
    remote = RemoteReranker(rerank_server, api_key=KEY)

    async def remote_many():
        return await asyncio.gather(*(remote.rerank_async(QUERY, DOCS[: n]) for n in (2, 3, 5)))

    for n, got in zip((2, 3, 5), asyncio.run(remote_many())):
        assert got.docids == remote.rerank(QUERY, DOCS[:n]).docids == dense.rerank(QUERY, DOCS[:n]).docids
