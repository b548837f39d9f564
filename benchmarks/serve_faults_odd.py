"""The odd-traffic cases of the fault run (``serve_faults.py`` calls :func:`odd_traffic`): idle
and slow sockets, a timed-out request's work, long queries, hostile JSON, a foreign Host."""

from __future__ import annotations

import socket
import time

from serve_faults import KEY, call, post_head, raw_case
from serve_load import CHILD_ENV


def idle_sockets(url: str, n: int = 300, polls: int = 10) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    socks, statuses, worst = [], [], 0.0
    try:
        for i in range(n):
            s = socket.create_connection((host, int(port)))
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # headers never finished
            socks.append(s)
        for _ in range(polls):
            t0 = time.perf_counter()
            statuses.append(call(url, "/health", key=None, timeout=10)[0])
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    ok = sum(st == 200 for st in statuses)
    return (200 if ok == polls else 0), f"/health {ok}/{polls} answered 200, slowest {worst * 1000:.0f} ms"


def slow_headers(url: str) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: localhost\r\n")
        t0 = time.perf_counter()
        answer = s.recv(4096)
    status = int(answer.split()[1]) if answer else 0
    return status, f"closed after {time.perf_counter() - t0:.1f} s"


def timed_out_remote(url: str, body: dict) -> tuple[int, str]:
    from rankstack.serve.client import RemoteReranker, RemoteRerankError

    t0 = time.perf_counter()
    try:
        RemoteReranker(url, api_key=KEY, max_retries=3, backoff=0.1).rerank(body["query"], body["documents"])
        return 200, "answered"
    except RemoteRerankError as e:
        return e.status or 0, f"RemoteReranker(max_retries=3): 1 attempt, {time.perf_counter() - t0:.1f} s"


def timed_out_cohere(url: str, body: dict) -> tuple[int, str]:
    import cohere

    t0 = time.perf_counter()
    try:
        cohere.ClientV2(api_key=KEY, base_url=url, timeout=60).rerank(model="x", query=body["query"],
                                                                         documents=body["documents"])
        return 200, "answered"
    except cohere.core.api_error.ApiError as e:
        return e.status_code or 0, (f"cohere.ClientV2 (retries every 5xx twice, no header stops it): "
                                    f"{time.perf_counter() - t0:.1f} s")


def odd_traffic(url: str, ok: dict, timeout: float, passages: list[str], case) -> None:
    """Every odd-traffic case on the fault server at ``url`` (``passages``: 160 distinct ones), then
    the keyless-server cases."""
    query, docs = ok["query"], ok["documents"]
    case("300 idle sockets while /health is polled", "200 every poll", idle_sockets(url))
    case("slow headers (never finished)", "408 after 2 s", slow_headers(url))
    many = {"query": query, "documents": passages}
    case(f"504: 160 documents, {timeout:g} s timeout (RemoteReranker)", "504, pass cut, no retry",
         timed_out_remote(url, many), settle=True)
    case(f"504: 160 documents, {timeout:g} s timeout (Cohere SDK)", "504, each attempt cut", timed_out_cohere(url, many),
         settle=True)
    for n in (16_000, 100_000):
        long_query = (query + " ") * (n // (len(query) + 1) + 1)
        t0 = time.perf_counter()
        got = call(url, "/v1/rerank", {"query": long_query[:n], "documents": docs})
        case(f"{n:,}-character query (/v1/rerank)", "200, cut to 256 tokens",
             (got[0], f"{got[1]}, {time.perf_counter() - t0:.2f} s"))
        case(f"{n:,}-character query (TEI truncate=false)", 413,
             call(url, "/rerank", {"query": long_query[:n], "texts": docs}))
    case("nested JSON (100,000 levels)", 400,
         call(url, "/v1/rerank", raw=b'{"query": "q", "documents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
    case("5,000-digit integer (top_n)", 400,
         call(url, "/v1/rerank", raw=b'{"query": "q", "documents": ["a"], "top_n": ' + b"9" * 5000 + b"}"))
    case("lone surrogate in a document", 400,
         call(url, "/v2/rerank", raw=b'{"query": "q", "documents": ["a \\ud800 b"]}'))
    keyless_cases(case)


def keyless_cases(case) -> None:
    from rankstack.serve.process import ServerProcess

    with ServerProcess(["--reranker", "dense", "--model", "minilm-l6", "--threads", "1"], env=CHILD_ENV) as srv:
        body = b'{"query": "q", "documents": ["a", "b"]}'
        head = post_head("/v1/rerank", len(body)).replace(f"Authorization: Bearer {KEY}\r\n".encode(),
                                                           b"Connection: close\r\n")
        own = srv.url.removeprefix("http://").encode()
        case("keyless server: foreign Host (DNS rebinding)", 400,
             raw_case(srv.url, head.replace(b"Host: x", b"Host: rebind.example.com") + body))
        case("keyless server: cross-origin text/plain POST", 415,
             raw_case(srv.url, head.replace(b"Host: x", b"Host: " + own + b"\r\nOrigin: http://" + own)
                      .replace(b"application/json", b"text/plain") + body))
        case("keyless server: foreign Origin", 403,
             raw_case(srv.url, head.replace(b"Host: x", b"Host: " + own + b"\r\nOrigin: http://evil.example") + body))
        case("keyless server: /docs", 404, call(srv.url, "/docs", key=None))
        case("keyless server: loopback Host, JSON", 200,
             raw_case(srv.url, head.replace(b"Host: x", b"Host: localhost") + body))
