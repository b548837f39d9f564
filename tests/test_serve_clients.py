"""The rerank service through the real client SDKs, installed and unmodified (the ``clients``
extra; cohere 7 and infinity-client in the Makefile's second venv ``.venv-clients``, driven
through tests/clients_v7.py): each ranks through the client as the dense reranker does locally,
and a wrong key surfaces as that client's own error.

    SDK                                   how it is pointed at the server        a wrong key raises
    cohere 5 ClientV2 / AsyncClientV2     base_url=URL                           cohere.errors.UnauthorizedError
    cohere 5 Client (v1)                  base_url=URL                           cohere.errors.UnauthorizedError
    langchain_cohere.CohereRerank         base_url=URL                           cohere.errors.UnauthorizedError
    llama-index JinaRerank                base_url=URL + "/v1"                   RuntimeError(detail)
    langchain-community JinaRerank        module constant JINA_API_URL           RuntimeError(detail)
    tei-client HttpClient                 HttpClient(URL, headers=..., event_hooks=raise_for_status)  httpx.HTTPStatusError
    cohere 7 (3 clients), infinity-client in .venv-clients (see clients_v7.py)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from rankstack.rerankers import load_reranker

from serve_support import DOCS, KEY, QUERY

ROOT = Path(__file__).resolve().parents[1]
CLIENTS_PY = Path(os.environ.get("RANKSTACK_CLIENTS_VENV", ROOT / ".venv-clients")) / "bin" / "python"


@pytest.fixture(scope="module")
def order():
    rr = load_reranker("dense", model="minilm-l6", cache=False, progress=False)
    return [int(d) for d in rr.rerank(QUERY, DOCS).docids]


def _cohere_v2(url, key):
    import cohere

    return [r.index for r in cohere.ClientV2(api_key=key, base_url=url).rerank(model="minilm", query=QUERY,
                                                                                documents=DOCS).results]


def _cohere_async(url, key):
    import cohere

    async def go():
        return await cohere.AsyncClientV2(api_key=key, base_url=url).rerank(model="minilm", query=QUERY, documents=DOCS)

    return [r.index for r in asyncio.run(go()).results]


def _cohere_v1(url, key):
    import cohere

    return [r.index for r in cohere.Client(api_key=key, base_url=url).rerank(model="minilm", query=QUERY,
                                                                            documents=DOCS).results]


def _langchain_cohere(url, key):
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(DOCS)]
    out = CohereRerank(cohere_api_key=key, base_url=url, model="minilm", top_n=5).compress_documents(docs, QUERY)
    return [d.metadata["n"] for d in out]


def _llama_jina(url, key):
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(DOCS)]
    out = JinaRerank(api_key=key, base_url=url + "/v1", model="minilm", top_n=5).postprocess_nodes(nodes, query_str=QUERY)
    return [int(n.node.id_) for n in out]


def _langchain_jina(url, key, monkeypatch):
    from langchain_community.document_compressors import jina_rerank
    from langchain_core.documents import Document

    monkeypatch.setattr(jina_rerank, "JINA_API_URL", url + "/v1/rerank")  # the client has no URL parameter
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(DOCS)]
    return [d.metadata["n"] for d in jina_rerank.JinaRerank(jina_api_key=key, top_n=5).compress_documents(docs, QUERY)]


def _tei(url, key):
    from tei_client import HttpClient

    client = HttpClient(url, headers={"Authorization": f"Bearer {key}"},
                        event_hooks={"response": [lambda r: r.raise_for_status()]})  # httpx raises on a 4xx
    assert client.info().server_model_id == "minilm"
    return [r.index for r in client.rerank(QUERY, DOCS, truncate=True).ranks]


SDKS = {  # name -> (rank through it, the error a wrong key raises, words its message holds)
    "cohere 5 ClientV2": (_cohere_v2, "cohere.errors.unauthorized_error.UnauthorizedError", "API key"),
    "cohere 5 AsyncClientV2": (_cohere_async, "cohere.errors.unauthorized_error.UnauthorizedError", "API key"),
    "cohere 5 Client (v1)": (_cohere_v1, "cohere.errors.unauthorized_error.UnauthorizedError", "API key"),
    "langchain-cohere CohereRerank": (_langchain_cohere, "cohere.errors.unauthorized_error.UnauthorizedError",
                                      "API key"),
    "llama-index JinaRerank": (_llama_jina, "builtins.RuntimeError", "API key"),
    "langchain-community JinaRerank": (_langchain_jina, "builtins.RuntimeError", "API key"),
    "tei-client HttpClient": (_tei, "httpx.HTTPStatusError", "401"),
}


@pytest.mark.parametrize("sdk", list(SDKS))
def test_sdk_ranks_and_surfaces_a_wrong_key(sdk, rerank_server, order, monkeypatch):
    rank, error, words = SDKS[sdk]
    args = (monkeypatch,) if sdk == "langchain-community JinaRerank" else ()
    assert rank(rerank_server, KEY, *args) == order
    with pytest.raises(Exception) as e:
        rank(rerank_server, "wrong", *args)
    assert f"{type(e.value).__module__}.{type(e.value).__name__}" == error and words in str(e.value)


def test_jina_clients_read_every_error_as_detail(rerank_server):
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    nodes = [NodeWithScore(node=TextNode(text="b" * 2001))]  # over the server's --max-doc-chars 2000
    with pytest.raises(RuntimeError, match="documents.0: 2001 characters"):
        JinaRerank(api_key=KEY, base_url=rerank_server + "/v1", top_n=1).postprocess_nodes(nodes, query_str=QUERY)


def test_cohere_7_and_infinity_client_in_their_own_venv(rerank_server, order):
    if not CLIENTS_PY.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CLIENTS_PY} is missing: `make venv` creates it")
        pytest.skip(f"{CLIENTS_PY} is missing (cohere 7 and infinity-client): `make venv` creates it")
    run = subprocess.run([str(CLIENTS_PY), str(ROOT / "tests" / "clients_v7.py"), rerank_server, KEY, QUERY,
                          json.dumps(DOCS)], capture_output=True, text=True, timeout=300, env={"PATH": os.environ["PATH"]})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["cohere"].startswith("7.")
    for name in ("ClientV2", "AsyncClientV2", "Client", "infinity /rerank", "infinity /v1/rerank"):
        assert out[name] == order, name
    for name in ("ClientV2", "AsyncClientV2", "Client"):
        assert out[f"{name} wrong key"] == "cohere.errors.unauthorized_error.UnauthorizedError 401", name
    for name in ("infinity /rerank", "infinity /v1/rerank"):
        assert out[f"{name} wrong key"] == "infinity_client.errors.UnexpectedStatus 401"
        assert out[f"{name} usage"] > len(DOCS)
    # returned documents: infinity's plain strings at /rerank, Jina's {"text": ...} objects at /v1/rerank
    assert out["infinity /rerank documents"][0] == DOCS[order[0]]
    assert out["infinity /v1/rerank documents"][0] == {"text": DOCS[order[0]]}


def test_tei_info_and_both_bodies_at_rerank(rerank_server, order):
    info = httpx.get(rerank_server + "/info", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert info["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert info["model_id"] == "minilm" and info["max_client_batch_size"] == 50
    auth = {"Authorization": f"Bearer {KEY}"}
    tei = httpx.post(rerank_server + "/rerank", json={"query": QUERY, "texts": DOCS}, headers=auth).json()
    inf = httpx.post(rerank_server + "/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2}, headers=auth).json()
    assert [r["index"] for r in tei] == order and [r["index"] for r in inf["results"]] == order[:2]
    assert inf["object"] == "rerank" and inf["usage"]["prompt_tokens"] == inf["usage"]["total_tokens"] > 0
