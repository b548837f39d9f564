"""The rerank service under odd traffic, as a real keyless process on loopback: Host and Origin
checks, idle and slow sockets, query limits, a timed-out request stopping its pass, the queue
cap, per-request instructions; and OpenTelemetry spans (an in-process uvicorn on a real port,
so the test's in-memory exporter sees them).

The server is the real MiniLM dense reranker with fault injection (benchmarks/_fault_reranker.py):
a document holding ``SLOWCHUNK<s>`` makes each chunk of model requests take ``s`` seconds more,
and ``--option chunk_size=2`` makes a request of 20 documents 10 chunks, so a pass can be cut.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from rankstack.rerankers import load_reranker
from rankstack.serve.client import RemoteReranker, RemoteRerankError
from rankstack.serve.process import raw_http

from serve_support import DOCS, metric, start_server

QUERY = "flea life cycle"
INSTRUCTION = "Given a question about insects, retrieve passages about their biology"


@pytest.fixture(scope="module")
def reference():
    return load_reranker("dense", model="minilm-l6", cache=False, progress=False)


@pytest.fixture(scope="module")
def keyless(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("keyless"), "--reranker", "_fault_reranker:FaultyDense",
                       "--model", "minilm-l6", "--threads", "1", "--option", "chunk_size=2", "--timeout-s", "2",
                       "--max-connections", "50", "--header-timeout-s", "1", "--read-timeout-s", "1",
                       "--max-queue-requests", "3", "--max-query-tokens", "8", "--model-name", "minilm")
    yield srv
    assert srv.stop() == 0, srv.log_tail()


def _head(method: str, path: str, host: str, extra: str = "", body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_keyless_server_answers_loopback_hosts_and_same_origin_json_only(keyless):
    url = keyless.url
    hostport = url.removeprefix("http://")
    body = b'{"query": "q", "documents": ["a"]}'
    json_type = "Content-Type: application/json\r\n"
    for host in ("localhost:9", "127.0.0.1", "[::1]:8000", hostport):
        assert raw_http(url, _head("GET", "/health", host))[0] == 200, host
    status, out = raw_http(url, _head("POST", "/v1/rerank", "rebind.example.com", json_type, body))
    assert status == 400 and out["error"]["type"] == "invalid_host"
    status, out = raw_http(url, _head("POST", "/v1/rerank", hostport, json_type + "Origin: http://evil.example\r\n", body))
    assert status == 403 and out["error"]["type"] == "forbidden_origin"
    status, out = raw_http(url, _head("POST", "/v1/rerank", hostport, "Content-Type: text/plain\r\n", body))
    assert status == 415 and out["error"]["type"] == "unsupported_media_type"
    status, out = raw_http(url, _head("POST", "/v1/rerank", hostport, json_type + f"Origin: http://{hostport}\r\n", body))
    assert status == 200 and out["results"][0]["index"] == 0
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(url + path).status_code == 404


def test_idle_sockets_do_not_starve_health_and_are_timed_out(keyless):
    url = keyless.url
    host, port = url.removeprefix("http://").split(":")
    socks = []
    try:
        for i in range(300):  # six times --max-connections: the longest-idle ones are closed to make room
            s = socket.create_connection((host, int(port)))
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # headers never finished
            socks.append(s)
        for _ in range(5):
            t0 = time.perf_counter()
            assert httpx.get(url + "/health", timeout=5).json()["status"] == "ok"
            assert time.perf_counter() - t0 < 2
        gauge = httpx.get(url + "/metrics").text
        assert "rankstack_open_connections " in gauge and metric(url, "rankstack_open_connections") <= 50
    finally:
        for s in socks:
            s.close()
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
    t0 = time.perf_counter()
    answer = s.recv(4096)
    assert b" 408 " in answer.split(b"\r\n")[0] and b"request_timeout" in answer
    assert 0.8 < time.perf_counter() - t0 < 5
    s = socket.create_connection((host, int(port)), timeout=10)  # a body that stops half-way
    s.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"query\"")
    assert s.recv(4096) == b""  # closed after --read-timeout-s
    assert httpx.get(url + "/health").status_code == 200


def test_query_cut_to_its_token_limit_or_413_as_the_request_says(keyless, reference):
    url = keyless.url
    long_query = QUERY + " and more words about dogs, cats and markets" * 40
    cut = reference.encoder.tokenizer.decode(reference.encoder.tokenizer(long_query, add_special_tokens=False)
                                             ["input_ids"][:8])
    jina = httpx.post(url + "/v1/rerank", json={"query": long_query, "documents": DOCS}).json()["results"]
    want = reference.rerank(cut, DOCS)
    assert [r["index"] for r in jina] == [int(d) for d in want.docids]
    assert [r["relevance_score"] for r in jina] == pytest.approx([(1 + d.score) / 2 for d in want.docs], abs=1e-5)
    r = httpx.post(url + "/rerank", json={"query": long_query, "texts": DOCS})  # TEI's default: truncate=false
    assert r.status_code == 413 and r.json()["error"]["type"] == "input_too_long" and "8" in r.json()["message"]
    tei = httpx.post(url + "/rerank", json={"query": long_query, "texts": DOCS, "truncate": True}).json()
    assert [t["score"] for t in tei] == pytest.approx([r["relevance_score"] for r in jina], abs=1e-6)
    left = httpx.post(url + "/rerank", json={"query": long_query, "texts": DOCS, "truncate": True,
                                             "truncation_direction": "Left"}).json()
    assert [t["score"] for t in left] != pytest.approx([t["score"] for t in tei], abs=1e-3)


def test_instruction_field_on_every_route(keyless, reference):
    url = keyless.url
    want = reference.rerank(QUERY, DOCS, instruction=INSTRUCTION)
    plain = reference.rerank(QUERY, DOCS)
    assert [d.score for d in want.docs] != pytest.approx([d.score for d in plain.docs], abs=1e-3)
    rel = sorted((1 + d.score) / 2 for d in want.docs)[::-1]
    for path, body in (("/v1/rerank", {"documents": DOCS}), ("/v2/rerank", {"documents": DOCS}),
                       ("/rerank", {"texts": DOCS})):
        out = httpx.post(url + path, json={"query": QUERY, "instruction": INSTRUCTION, **body}).json()
        rows = out if isinstance(out, list) else out["results"]
        assert [r.get("relevance_score", r.get("score")) for r in rows] == pytest.approx(rel, abs=1e-5), path
    got = RemoteReranker(url, instruction=INSTRUCTION).rerank(QUERY, DOCS)
    assert got.docids == want.docids


def test_a_timed_out_request_stops_its_pass_and_is_not_retried(keyless):
    url = keyless.url
    docs = [f"SLOWCHUNK0.5 passage {i} about fleas" for i in range(20)]  # 10 chunks of 0.5 s: 5 s of work
    work0 = metric(url, "rankstack_model_requests_total")
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/rerank", json={"query": QUERY, "documents": docs}, timeout=30)
    assert r.status_code == 504 and r.headers["x-should-retry"] == "false" and r.json()["detail"]
    assert httpx.post(url + "/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=30).status_code == 200
    assert time.perf_counter() - t0 < 4.5  # the pass stopped within a chunk of the timeout
    cut = metric(url, "rankstack_model_requests_total") - work0 - len(DOCS) - 1
    assert 1 <= cut <= 13, cut  # the query and at most 6 chunks of 2, not 21
    work1 = metric(url, "rankstack_model_requests_total")
    t0 = time.perf_counter()
    with pytest.raises(RemoteRerankError) as e:
        RemoteReranker(url, max_retries=3, backoff=0.01).rerank(QUERY, docs)
    assert e.value.status == 504 and time.perf_counter() - t0 < 4
    time.sleep(0.8)  # the chunk running at the timeout finishes
    assert metric(url, "rankstack_model_requests_total") - work1 <= 13  # one attempt's work, no retries


def test_queue_cap_answers_503_with_retry_after(keyless):
    url = keyless.url
    answers = []

    def send(query):
        answers.append(httpx.post(url + "/v1/rerank", json={"query": query, "documents": ["a", "b"]}, timeout=30))

    first = threading.Thread(target=send, args=("SLEEP1.5 q",))
    first.start()
    time.sleep(0.3)
    threads = [threading.Thread(target=send, args=(f"q{i}",)) for i in range(5)]
    for t in threads:
        t.start()
    for t in [first, *threads]:
        t.join()
    full = [a for a in answers if a.status_code == 503]
    assert len(full) >= 2 and all(a.headers["Retry-After"] == "1" and "requests" in a.json()["message"] for a in full)
    assert sum(a.status_code == 200 for a in answers) >= 3


def test_opentelemetry_spans_for_parse_queue_and_model_pass(reference):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from rankstack.serve.app import ServeConfig, create_app
    from rankstack.serve.server import ConnectionLimits, bind_socket, protocol_for

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    import uvicorn

    sock = bind_socket("127.0.0.1", 0)
    app = create_app(reference, ServeConfig(model_name="minilm"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=protocol_for(ConnectionLimits()),
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.post(url + "/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 200
    finally:
        server.should_exit = True
        thread.join(30)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"rankstack.rerank", "rankstack.parse", "rankstack.queue", "rankstack.model_pass"} <= set(spans)
    root = spans["rankstack.rerank"]
    for name in ("rankstack.parse", "rankstack.queue", "rankstack.model_pass"):
        assert spans[name].context.trace_id == root.context.trace_id and spans[name].parent.span_id == root.context.span_id
    assert root.attributes["rankstack.route"] == "/v1/rerank" and root.attributes["rankstack.documents"] == len(DOCS)
    assert spans["rankstack.model_pass"].attributes["rankstack.model_requests"] == len(DOCS) + 1
    assert spans["rankstack.queue"].end_time <= spans["rankstack.model_pass"].start_time
