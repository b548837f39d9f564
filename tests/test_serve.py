"""The rerank service as a real process (``rankstack serve``, uvicorn) on a free loopback port,
over real HTTP, with the real all-MiniLM-L6-v2 dense reranker.

Faults are injected by ``benchmarks/_fault_reranker.py:FaultyDense``, the real dense reranker
served with ``--reranker module:Class``: a query containing ``RAISE`` makes its program raise;
``SLEEP<s>`` holds the worker thread ``s`` seconds (a long engine pass). Every other query runs
the unchanged dense reranker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from rankstack.rerankers import load_reranker
from rankstack.rerankers.commands import parse_options
from rankstack.serve.client import RemoteReranker, RemoteRerankError
from rankstack.serve.process import raw_http

from serve_support import DOCS, KEY, QUERY, ROOT, call, metric, start_server


@pytest.fixture(scope="module")
def reference():
    """The same reranker in this process: the answers the server must give."""
    return load_reranker("dense", model="minilm-l6", cache=False, progress=False)


@pytest.fixture
def server(rerank_server):
    return rerank_server


def test_three_apis_same_order_each_in_its_shape(server, reference):
    want = reference.rerank(QUERY, DOCS)
    order = [int(d) for d in want.docids]
    s1, jina = call(server, "/v1/rerank", {"model": "x", "query": QUERY, "documents": DOCS})
    s2, cohere = call(server, "/v2/rerank", {"model": "x", "query": QUERY, "documents": DOCS})
    s3, tei = call(server, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True})
    assert (s1, s2, s3) == (200, 200, 200)
    assert [r["index"] for r in jina["results"]] == order
    assert [r["index"] for r in cohere["results"]] == order
    assert [r["index"] for r in tei] == order
    # Jina: model, usage, documents echoed by default
    assert jina["model"] == "minilm" and jina["usage"]["total_tokens"] > len(DOCS)
    assert [r["document"]["text"] for r in jina["results"]] == [DOCS[i] for i in order]
    # Cohere v2: id and meta, no documents
    assert set(cohere) == {"id", "results", "meta"} and set(cohere["results"][0]) == {"index", "relevance_score"}
    # TEI: a bare array; raw_scores gives the cosine, relevance is (1 + cos) / 2
    raw = {int(d.docid): d.score for d in want.docs}
    for r, c in zip(tei, cohere["results"]):
        assert r["score"] == pytest.approx(raw[r["index"]], abs=1e-5)
        assert c["relevance_score"] == pytest.approx((1 + raw[c["index"]]) / 2, abs=1e-5)
        assert r["text"] == DOCS[r["index"]]
    rel = [r["relevance_score"] for r in jina["results"]]
    assert rel == sorted(rel, reverse=True) and all(0 <= x <= 1 for x in rel)
    _, tei_rel = call(server, "/rerank", {"query": QUERY, "texts": DOCS})
    assert [r["score"] for r in tei_rel] == pytest.approx(rel, abs=1e-6) and "text" not in tei_rel[0]


def test_top_n_return_documents_and_document_objects(server):
    docs = [{"text": t, "id": f"d{i}"} for i, t in enumerate(DOCS)]
    _, out = call(server, "/v1/rerank", {"query": QUERY, "documents": docs, "top_n": 2})
    assert len(out["results"]) == 2 and out["results"][0]["document"] == docs[out["results"][0]["index"]]
    _, out = call(server, "/v1/rerank", {"query": QUERY, "documents": DOCS, "top_n": 9, "return_documents": False})
    assert len(out["results"]) == len(DOCS) and "document" not in out["results"][0]
    _, full = call(server, "/v2/rerank", {"query": QUERY, "documents": DOCS})
    _, cut = call(server, "/v2/rerank", {"query": QUERY, "documents": DOCS, "max_tokens_per_doc": 3, "top_n": 3})
    assert len(cut["results"]) == 3
    assert [r["relevance_score"] for r in cut["results"]] != [r["relevance_score"] for r in full["results"][:3]]


BAD = [  # (what, path, raw body or JSON, extra headers, status, error type, words in the message)
    ("invalid JSON", "/v1/rerank", b'{"query": ', {}, 400, "invalid_json", "not JSON"),
    ("invalid UTF-8", "/rerank", b'{"query": "\xff\xfe", "texts": ["a"]}', {}, 400, "invalid_utf8", "UTF-8"),
    ("missing field", "/v1/rerank", {"documents": ["a"]}, {}, 422, "validation_error", "query"),
    ("wrong type", "/v2/rerank", {"query": "q", "documents": ["a", 3]}, {}, 422, "validation_error", "documents.1"),
    ("bad top_n", "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, {}, 422, "validation_error", "top_n"),
    ("not an object", "/rerank", ["q"], {}, 422, "validation_error", "valid dictionary"),
    ("empty documents", "/rerank", {"query": "q", "texts": []}, {}, 422, "validation_error", "texts"),
    ("too many documents", "/v1/rerank", {"query": "q", "documents": ["a"] * 51}, {}, 413, "too_many_documents", "50"),
    ("document too long", "/v2/rerank", {"query": "q", "documents": ["a", "b" * 2001]}, {}, 413, "document_too_long",
     "documents.1"),
    ("body too large", "/v1/rerank", {"query": "q", "documents": ["x" * 1000] * 60}, {}, 413, "payload_too_large",
     "limit"),
    ("bad truncation side", "/rerank", {"query": "q", "texts": ["a"], "truncation_direction": "Middle"}, {}, 422,
     "validation_error", "truncation_direction"),
    ("nested JSON", "/v1/rerank", b'{"query": "q", "documents": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400,
     "json_too_deep", "nested"),
    ("nested, under the parser's limit", "/v1/rerank", b'{"query": "q", "documents": ["a"], "x": ' + b"[" * 40
     + b"]" * 40 + b"}", {}, 400, "json_too_deep", "16"),
    ("huge integer", "/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": ' + b"9" * 5000 + b"}", {}, 400,
     "number_too_large", "5000 digits"),
    ("NaN", "/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": NaN}', {}, 400, "invalid_json", "NaN"),
    ("lone surrogate", "/v2/rerank", b'{"query": "q", "documents": ["a", "b\\ud800c"]}', {}, 400, "invalid_unicode",
     "documents.1"),
    ("instruction too long", "/v1/rerank", {"query": "q", "documents": ["a"], "instruction": "i" * 2001}, {}, 413,
     "instruction_too_long", "2000"),
    ("TEI truncate=false, long query", "/rerank", {"query": "flea " * 300, "texts": ["a"]}, {}, 413, "input_too_long",
     "tokens"),
    ("no key", "/v1/rerank", {"query": "q", "documents": ["a"]}, {"Authorization": ""}, 401, "unauthorized", "key"),
    ("wrong key", "/v1/rerank", {"query": "q", "documents": ["a"]}, {"Authorization": "Bearer nope"}, 401,
     "unauthorized", "key"),
]


@pytest.mark.parametrize("what,path,body,headers,status,kind,words", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_json_errors(server, what, path, body, headers, status, kind, words):
    raw = body if isinstance(body, bytes) else None
    got, out = call(server, path, None if raw else body, raw=raw, headers=headers)
    assert got == status, out
    assert out["error"]["type"] == kind and words in out["error"]["message"]
    assert out["message"] == out["error"]["message"]  # what Cohere-style clients read
    assert out["detail"] == out["message"] or (status == 422 and out["detail"][0]["loc"][0] == "body")  # Jina, FastAPI


def test_routes_methods_and_malformed_http(server):
    status, out = call(server, "/v3/rerank", {"query": "q"})
    assert status == 404 and out["error"]["type"] == "not_found"
    status, out = call(server, "/v1/rerank", method="GET")
    assert status == 405 and out["error"]["type"] == "method_not_allowed"
    for length in (b"-5", b"abc"):
        status, out = raw_http(server, b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}")
        assert status == 400 and out["error"]["type"] == "bad_request"
    assert call(server, "/health", headers={"Authorization": ""}) == (200, {"status": "ok", "model": "minilm",
                                                                           "queued_documents": 0})
    assert call(server, "/v1/models")[1]["data"][0]["id"] == "minilm"
    assert call(server, "/v1/models", headers={"Authorization": ""})[0] == 401


def test_a_failing_request_fails_alone_and_the_server_keeps_serving(server, reference):
    results = {}

    def send(name, query):
        results[name] = call(server, "/v1/rerank", {"query": query, "documents": DOCS})

    blocker = threading.Thread(target=send, args=("slow", "SLEEP1 " + QUERY))
    blocker.start()
    time.sleep(0.4)  # the slow one holds the worker: the next two queue up and share one pass
    threads = [threading.Thread(target=send, args=(n, q)) for n, q in (("bad", "RAISE " + QUERY), ("good", QUERY))]
    for t in threads:
        t.start()
    for t in [blocker, *threads]:
        t.join()
    assert results["bad"][0] == 500 and results["bad"][1]["error"]["type"] == "reranker_error"
    assert "injected failure" in results["bad"][1]["error"]["message"]
    assert results["good"][0] == 200 and results["slow"][0] == 200
    assert [r["index"] for r in results["good"][1]["results"]] == [int(d) for d in reference.rerank(QUERY, DOCS).docids]
    assert call(server, "/v1/rerank", {"query": QUERY, "documents": DOCS})[0] == 200


def test_concurrent_requests_merge_into_one_pass_with_unchanged_answers(server, reference):
    queries = [f"{QUERY} {w}" for w in ("eggs", "cake", "markets", "blood", "larvae", "days")]
    passes0 = metric(server, "rankstack_batch_requests_count")
    merged0 = metric(server, "rankstack_batch_requests_sum")
    results = {}

    def send(q):
        results[q] = call(server, "/rerank", {"query": q, "texts": DOCS, "raw_scores": True})

    blocker = threading.Thread(target=send, args=("SLEEP1 " + QUERY,))
    blocker.start()
    time.sleep(0.4)
    threads = [threading.Thread(target=send, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in [blocker, *threads]:
        t.join()
    assert metric(server, "rankstack_batch_requests_count") - passes0 == 2  # the blocker, then all six at once
    assert metric(server, "rankstack_batch_requests_sum") - merged0 == 7
    for q in queries:
        status, out = results[q]
        want = reference.rerank(q, DOCS)
        assert status == 200 and [r["index"] for r in out] == [int(d) for d in want.docids]
        assert [r["score"] for r in out] == pytest.approx([d.score for d in want.docs], abs=1e-5)


def test_timeout_and_client_hangup(server):
    status, out = call(server, "/v1/rerank", {"query": "SLEEP4 x", "documents": ["a", "b"]})
    assert status == 504 and out["error"]["type"] == "timeout"
    time.sleep(1.2)  # the worker finishes that pass
    docs0 = metric(server, "rankstack_batch_documents_sum")
    hangups0 = metric(server, "rankstack_requests_total", '{route="/v1/rerank",status="499"}')
    slow = threading.Thread(target=call, args=(server, "/v1/rerank", {"query": "SLEEP1.5 x", "documents": ["a", "b"]}))
    slow.start()
    time.sleep(0.3)
    body = json.dumps({"query": "gone", "documents": ["c"] * 7}).encode()
    host, port = server.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
              + KEY.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.3)
    s.close()  # hangs up while queued behind the slow pass
    slow.join()
    time.sleep(0.3)
    assert metric(server, "rankstack_batch_documents_sum") - docs0 == 2  # the 7 documents never reached the model
    assert metric(server, "rankstack_requests_total", '{route="/v1/rerank",status="499"}') - hangups0 == 1


def test_metrics_are_prometheus_text(server):
    _, text = call(server, "/metrics")
    for name in ("rankstack_requests_total", "rankstack_request_seconds_bucket", "rankstack_documents_total",
                 "rankstack_batch_documents_bucket", "rankstack_errors_total", "rankstack_queued_documents"):
        assert name in text
    assert metric(server, "rankstack_errors_total", '{type="validation_error"}') >= 1


def test_remote_reranker_matches_the_local_reranker(server, reference, dl19):
    remote = RemoteReranker(server, api_key=KEY)
    want = reference.rerank(QUERY, DOCS)
    got = remote.rerank(QUERY, DOCS, k=3)
    assert got.docids == want.docids[:3]
    assert [d.score for d in got.docs] == pytest.approx([(1 + d.score) / 2 for d in want.docs[:3]], abs=1e-5)
    run = dl19.run.top(8)
    sub = type(run)({q: run[q] for q in list(run)[:3]}, name="bm25")
    local = reference.rerank_run(sub, dl19.queries, dl19.corpus, depth=5)
    remote_run = remote.rerank_run(sub, dl19.queries, dl19.corpus, depth=5)
    for q in sub:
        assert remote_run[q].docids == local[q].docids  # the reranked 5, then the first-stage tail
    with pytest.raises(RemoteRerankError) as e:
        RemoteReranker(server, api_key="wrong").rerank(QUERY, DOCS)
    assert e.value.status == 401
    with pytest.raises(RemoteRerankError, match="Connection refused|refused"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        RemoteReranker(f"http://127.0.0.1:{port}", max_retries=2, backoff=0.01).rerank(QUERY, DOCS)


def test_remote_reranker_inside_langchain(server, reference):
    from langchain_core.documents import Document

    from rankstack.integrations.langchain import RankstackRerank

    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(DOCS)]
    out = RankstackRerank(reranker=RemoteReranker(server, api_key=KEY), top_n=2).compress_documents(docs, QUERY)
    assert [d.metadata["n"] for d in out] == [int(d) for d in reference.rerank(QUERY, DOCS).docids[:2]]


def test_sigterm_drains_in_flight_and_refuses_new(tmp_path):
    srv = start_server(tmp_path, "--reranker", "_fault_reranker:FaultyDense", "--model", "minilm-l6", "--threads", "1")
    url = srv.url
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("slow", call(url, "/v1/rerank", {"query": "SLEEP2 q",
                                                                                      "documents": ["a", "b"]})))
    t.start()
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    status, body = call(url, "/v1/rerank", {"query": "q", "documents": ["a"]})
    assert status == 503 and body["error"]["type"] == "unavailable"
    with pytest.raises(RemoteRerankError) as e:
        RemoteReranker(url, max_retries=0).rerank("q", ["a"])
    assert e.value.status == 503
    t.join()
    assert out["slow"][0] == 200 and len(out["slow"][1]["results"]) == 2
    assert srv.proc.wait(30) == 0


def test_refuses_a_public_address_without_a_key(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rankstack.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 2 and "--api-key" in r.stderr


def test_parse_options():
    assert parse_options(["method=yesno", "fusion=0.8", "window=20"]) == {"method": "yesno", "fusion": 0.8, "window": 20}
