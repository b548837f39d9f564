"""A small HTTP rerank endpoint for RAG systems: ``rankstack serve``.

``POST /v1/rerank`` with ``{"query": str, "documents": [str | {"id", "text"}], "top_n": int?}``
answers ``{"model", "results": [{"index", "id", "relevance_score"}], "usage": {...}}`` (the
shape Cohere/Jina/vLLM rerank APIs use). ``GET /health`` answers ``{"status": "ok"}``.
The reranker runs one request at a time (a model is not thread-safe); the standard library
server is enough for a sidecar. Put a real server in front for production traffic.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rankstack.errors import RankstackError
from rankstack.types import Doc, Query

log = logging.getLogger(__name__)


def parse_rerank_request(body: bytes) -> tuple[Query, list[Doc], int | None]:
    try:
        req = json.loads(body or b"{}")
    except json.JSONDecodeError as e:
        raise RankstackError(f"request body is not JSON ({e.msg})") from None
    if not isinstance(req, dict) or not isinstance(req.get("query"), str) or not isinstance(req.get("documents"), list):
        raise RankstackError('expected {"query": str, "documents": [str | {"id", "text"}], "top_n": int?}')
    docs = []
    for i, d in enumerate(req["documents"]):
        if isinstance(d, str):
            docs.append(Doc(str(i), d))
        elif isinstance(d, dict) and isinstance(d.get("text"), str):
            docs.append(Doc(str(d.get("id", i)), d["text"]))
        else:
            raise RankstackError(f"documents[{i}] must be a string or an object with 'text'")
    top_n = req.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or top_n <= 0):
        raise RankstackError("top_n must be a positive integer")
    return Query("q", req["query"]), docs, top_n


def make_server(reranker, host: str = "127.0.0.1", port: int = 8000, model_name: str = "") -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, obj) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self):  # noqa: N802
            if self.path not in ("/v1/rerank", "/rerank"):
                self._send(404, {"error": f"no route {self.path}"})
                return
            try:
                n = int(self.headers.get("Content-Length") or 0)
                query, docs, top_n = parse_rerank_request(self.rfile.read(n))
            except RankstackError as e:
                self._send(400, {"error": str(e)})
                return
            t0 = time.perf_counter()
            with lock:
                ranking = reranker.rerank(query, docs, k=top_n) if docs else None
            index = {d.docid: i for i, d in enumerate(docs)}
            results = [{"index": index[s.docid], "id": s.docid, "relevance_score": s.score}
                       for s in (ranking.docs if ranking else [])]
            self._send(200, {"model": model_name, "results": results,
                             "usage": {"documents": len(docs), "seconds": round(time.perf_counter() - t0, 4)}})

        def log_message(self, fmt, *args):
            log.info("%s %s", self.address_string(), fmt % args)

    return ThreadingHTTPServer((host, port), Handler)


def add_parsers(sub) -> None:
    p = sub.add_parser("serve", help="HTTP rerank endpoint: POST /v1/rerank {query, documents, top_n}")
    p.add_argument("--reranker", default="pointwise")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--backend", default="hf")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reranker option (repeatable), e.g. --option method=yesno; values parsed as JSON when possible")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.commands import parse_options

    rr = load_reranker(args.reranker, model=args.model, backend=args.backend, **parse_options(args.option))
    srv = make_server(rr, args.host, args.port, model_name=f"{args.reranker}:{args.model}")
    print(f"rankstack serve: http://{args.host}:{srv.server_address[1]}/v1/rerank ({args.reranker}, {args.model})")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0
