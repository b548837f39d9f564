"""Bad-input and fault run of ``rankstack serve`` on loopback: each case, the status received.

The server runs SmolLM2-135M pointwise yes/no with an API key, a 1 MB body limit, a request
timeout of ``--timeout-s`` (5 s by default; give more on a busy shared machine) and chunks of 16
model requests (so a pass can be cut every 16 documents); faults come from ``_fault_reranker.FaultyPointwise`` (the real pointwise
reranker; a query containing ``RAISE`` raises inside the engine pass, ``SLEEP<s>`` holds the
worker). Cases: oversized body, 10,000 documents, a document over the character cap, invalid
UTF-8, invalid JSON, negative and non-numeric Content-Length, missing fields, wrong types, empty
documents, no key, wrong key, unknown route, wrong method, the reranker raising (with a
normal request merged into the same pass), a request over the timeout, a client hanging up
mid-body and while queued (its documents must never reach the model: ``/metrics``), then a
normal request; last, SIGTERM during load from 8 clients (in-flight requests answered, new
ones 503, exit status 0).

Odd traffic (``odd_traffic``): 300 idle sockets (half with unfinished headers) while ``/health``
is polled, slow headers (408 after ``--header-timeout-s``), a 160-document request over the
timeout (504: documents of model work counted, through ``RemoteReranker`` and through Cohere's
SDK, which retries every 5xx), 16,000- and 100,000-character queries (cut to the token limit;
TEI's ``truncate=false``: 413), deeply nested JSON, a 5,000-digit integer, a lone surrogate; and
on a second, keyless server (MiniLM dense), a foreign ``Host`` and a cross-origin ``text/plain``
POST. The ``work`` column: model requests run during the case (pointwise: one per document), from
the server's ``rankstack_model_requests_total``.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/serve_faults.py --threads 1 --timeout-s 30
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

from _common import command_line  # also sets the offline env defaults
from rankstack.hardware import describe  # noqa: E402
from serve_load import CHILD_ENV, HERE, metric, write_result

KEY = "fault-run-key"


def call(url: str, path: str, body=None, raw: bytes | None = None, key: str | None = KEY, method: str | None = None,
         timeout: float = 120) -> tuple[int, str]:
    """(status, error type or 'ok')."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url + path, data=data, headers=headers,
                                 method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status, "ok"
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read())["error"]["type"]
        except (ValueError, KeyError, TypeError):
            return e.code, "(not JSON)"
    except (urllib.error.URLError, ConnectionError) as e:
        return 0, type(getattr(e, "reason", e)).__name__


def raw_case(url: str, request: bytes) -> tuple[int, str]:
    from rankstack.serve.process import raw_http

    status, body = raw_http(url, request)
    return status, (body.get("error", {}).get("type", "ok") if isinstance(body, dict) else "(not JSON)")


def hang_up(url: str, head: bytes, body: bytes, send: int, wait: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(head + body[:send])
    time.sleep(wait)
    s.close()


def post_head(path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout-s", type=float, default=5.0, help="the server's --timeout-s (a busy machine needs more)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "serve_faults.txt"))
    args = ap.parse_args(argv)

    from rankstack.data import load_dataset

    ds = load_dataset("dl19")
    q0 = sorted(ds.run)[0]
    query = ds.queries[q0].text
    docs = [d.text for d in ds.corpus.get_many(ds.run[q0].docids[:3])]
    ok = {"query": query, "documents": docs}
    server_args = ["--reranker", "_fault_reranker:FaultyPointwise", "--model", "smollm2-135m", "--method", "yesno",
                   "--dtype", "float32", "--threads", str(args.threads), "--api-key", KEY, "--max-body-mb", "1",
                   "--timeout-s", f"{args.timeout_s:g}", "--max-doc-chars", "20000", "--header-timeout-s", "2",
                   "--option", "chunk_size=16"]
    from rankstack.serve.process import ServerProcess

    rows = []  # (case, expected, got status, error type, model requests run during the case)
    load0 = os.getloadavg()
    srv = ServerProcess(server_args, env=CHILD_ENV).start()
    url = srv.url
    call(url, "/v1/rerank", {"query": "warm-up", "documents": ["a"]}, timeout=600)  # kernels, allocator: not a case
    last = {"work": metric(url, "rankstack_model_requests_total", key=KEY)}

    def case(name, expected, result, settle: bool = True):
        if srv.proc.poll() is not None:  # the server has exited (the SIGTERM case)
            rows.append((name, expected, *result, "-"))
            return
        while settle and (metric(url, "rankstack_running_requests", key=KEY)
                          or metric(url, "rankstack_queued_documents", key=KEY)):
            time.sleep(0.5)  # a pass still running finishes its chunk first
        work = metric(url, "rankstack_model_requests_total", key=KEY)
        rows.append((name, expected, *result, f"{work - last['work']:g}"))
        last["work"] = work
        print(rows[-1], file=sys.stderr, flush=True)

    try:
        case("normal request (before)", 200, call(url, "/v1/rerank", ok))
        case("oversized body (2 MB declared, limit 1 MB)", 413, raw_case(url, post_head("/v1/rerank", 2_000_000)))
        case("10,000 documents", 413, call(url, "/v1/rerank", {"query": query, "documents": ["a"] * 10_000}))
        case("document over the character cap", 413, call(url, "/v2/rerank", {"query": query, "documents": ["b" * 20_001]}))
        case("invalid UTF-8", 400, call(url, "/rerank", raw=b'{"query": "\xff\xfe", "texts": ["a"]}'))
        case("invalid JSON", 400, call(url, "/v1/rerank", raw=b'{"query": "q", "documents": ['))
        case("negative Content-Length", 400, raw_case(url, post_head("/v1/rerank", -5) + b"{}"))
        bad = post_head("/v1/rerank", 0).replace(b"Content-Length: 0", b"Content-Length: 12abc")
        case("non-numeric Content-Length", 400, raw_case(url, bad + b"{}"))
        case("missing field (no query)", 422, call(url, "/v1/rerank", {"documents": docs}))
        case("wrong type (documents: [1, 2])", 422, call(url, "/v2/rerank", {"query": query, "documents": [1, 2]}))
        case("wrong type (top_n: \"3\")", 422, call(url, "/v1/rerank", {**ok, "top_n": "3"}))
        case("empty documents", 422, call(url, "/rerank", {"query": query, "texts": []}))
        case("no key", 401, call(url, "/v1/rerank", ok, key=None))
        case("wrong key", 401, call(url, "/v1/rerank", ok, key="not-the-key"))
        case("unknown route", 404, call(url, "/v1/rank", ok))
        case("wrong method (GET /v1/rerank)", 405, call(url, "/v1/rerank", method="GET"))

        out = {}
        slow = threading.Thread(target=lambda: out.setdefault("slow", call(url, "/v1/rerank", {**ok, "query": "SLEEP1 " + query})))
        slow.start()
        time.sleep(0.3)
        merged = [threading.Thread(target=lambda n=n, q=q: out.setdefault(n, call(url, "/v1/rerank", {**ok, "query": q})))
                  for n, q in (("raise", "RAISE " + query), ("neighbour", query))]
        for t in merged:
            t.start()
        for t in [slow, *merged]:
            t.join()
        case("reranker raising (merged with a normal request)", 500, out["raise"])
        case("  ... the normal request merged with it", 200, out["neighbour"])
        before7 = metric(url, "rankstack_batch_documents_sum", key=KEY)
        sleep = f"SLEEP{args.timeout_s + 2:g}"
        case(f"request over the {args.timeout_s:g} s timeout ({sleep})", 504,
             call(url, "/v1/rerank", {**ok, "query": f"{sleep} " + query}))
        # the worker still finishes that pass (its 3 documents): wait for it, so the counts below are this case's only
        deadline = time.monotonic() + 120
        while metric(url, "rankstack_batch_documents_sum", key=KEY) - before7 < len(docs) and time.monotonic() < deadline:
            time.sleep(0.2)

        hangups0 = metric(url, 'rankstack_requests_total{route="/v1/rerank",status="499"}', key=KEY)
        body = json.dumps({"query": query, "documents": docs}).encode()
        hang_up(url, post_head("/v1/rerank", len(body)), body, send=20, wait=0.3)
        time.sleep(0.3)
        got = metric(url, 'rankstack_requests_total{route="/v1/rerank",status="499"}', key=KEY) - hangups0
        case("client hanging up mid-body", "499 (server side)", (499 if got == 1 else 0, f"counted {got:g}"))

        docs0 = metric(url, "rankstack_batch_documents_sum", key=KEY)
        slow = threading.Thread(target=lambda: out.__setitem__("slow2", call(url, "/v1/rerank", {**ok, "query": "SLEEP2 " + query})))
        slow.start()
        time.sleep(0.3)
        body = json.dumps({"query": query, "documents": [d[:50] for d in docs] * 3}).encode()  # 9 documents
        hang_up(url, post_head("/v1/rerank", len(body)), body, send=len(body), wait=0.5)
        slow.join()
        time.sleep(0.3)
        scored = metric(url, "rankstack_batch_documents_sum", key=KEY) - docs0
        got = metric(url, 'rankstack_requests_total{route="/v1/rerank",status="499"}', key=KEY) - hangups0 - 1
        case("client hanging up while queued", "499, slot freed",
             (499 if got == 1 and scored == len(docs) else 0, f"documents scored {scored:g} (the slow request's "
                                                             f"{len(docs)}; the 9 of the hung-up one never)"))
        from serve_faults_odd import odd_traffic

        odd_traffic(url, ok, args.timeout_s, [d.text for d in ds.corpus.get_many(ds.run[q0].docids[:160])], case)
        case("normal request (after all of them)", 200, call(url, "/v1/rerank", ok))

        # SIGTERM during load: 8 clients send until the server is gone
        statuses, lock, stop = {}, threading.Lock(), threading.Event()
        sent_before = {"n": 0}

        def client():
            while not stop.is_set():
                st = call(url, "/v1/rerank", ok, timeout=300)
                with lock:
                    statuses[st] = statuses.get(st, 0) + 1
                if st[0] == 0:  # connection refused: the server has exited
                    return
                if st[0] == 503:
                    time.sleep(0.05)  # a client backing off

        clients = [threading.Thread(target=client) for _ in range(8)]
        for t in clients:
            t.start()
        time.sleep(4)
        with lock:
            sent_before["n"] = sum(statuses.values())
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(120)
        stop.set()
        for t in clients:
            t.join()
        summary = ", ".join(f"{s} {k}: {n}" for (s, k), n in sorted(statuses.items(), key=lambda x: -x[1]))
        lost = sum(n for (s, _), n in statuses.items() if s not in (200, 503, 0))
        case("SIGTERM during load (8 clients)", "200 in flight, 503 new, exit 0",
             (rc, f"exit status {rc}; answers: {summary}; other statuses (lost): {lost}"))
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    load1 = os.getloadavg()

    lines = [
        "# " + command_line(),
        f"server: rankstack serve {' '.join(server_args)}",
        f"model smollm2-135m pointwise yesno (fp32, hf backend); data DL19 query {q0} with 3 BM25 passages",
        f"hardware: {describe()}; load average at start {load0[0]:.2f}, at end {load1[0]:.2f}",
        "",
        f"{'case':<58} {'expected':<32} {'got':>5} {'work':>5}  detail",
    ]
    for name, expected, status, detail, work in rows:
        lines.append(f"{name:<58} {str(expected):<32} {status:>5} {work:>5}  {detail}")
    write_result(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
