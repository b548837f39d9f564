"""``rankstack serve``: the rerank service on uvicorn.

    rankstack serve --reranker pointwise --model smollm2-135m --method yesno --threads 2 --batch-size 16
    rankstack serve --reranker dense --model minilm-l6 --host 0.0.0.0 --api-key "$KEY"

Binds 127.0.0.1 by default; a non-loopback address needs ``--api-key`` (or ``RANKSTACK_API_KEY``)
unless ``--insecure``. A keyless server answers loopback ``Host`` names only and no cross-origin
or simple-content-type POSTs (``--allow-host``, ``--allow-origin``); ``/docs`` only with ``--docs``.
Every limit and timeout is a flag (docs/serving.md lists them). SIGTERM (or Ctrl-C) drains: requests in flight finish, new ones get 503,
then the process exits. ``--reranker`` also takes ``module:Class`` (your own Reranker subclass).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket

from rankstack.errors import UsageError

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    from rankstack.rerankers.commands import add_reranker_args

    p = sub.add_parser("serve", help="HTTP rerank service: Jina /v1/rerank, Cohere /v2/rerank, TEI /rerank")
    add_reranker_args(p, cache_default=False)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port, printed at start)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: $RANKSTACK_API_KEY; none on loopback)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without an API key")
    p.add_argument("--model-name", default=None, help="model name the API answers with (default RERANKER:MODEL)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="merge requests arriving within this many ms into one engine pass (default 10)")
    p.add_argument("--max-batch-docs", type=int, default=256, help="documents per engine pass at most (default 256)")
    p.add_argument("--max-queue-docs", type=int, default=4096,
                   help="documents waiting at most; more get 503 (default 4096)")
    p.add_argument("--max-docs", type=int, default=1000, help="documents per request at most (default 1000)")
    p.add_argument("--max-doc-chars", type=int, default=100_000,
                   help="characters per document at most; more: 413 (default 100000)")
    p.add_argument("--max-query-chars", type=int, default=20_000, help="characters per query (default 20000)")
    p.add_argument("--max-query-tokens", type=int, default=256, help="tokens per query (default 256)")
    p.add_argument("--no-truncate", dest="truncate", action="store_false",
                   help="a query over --max-query-chars/--max-query-tokens gets 413 instead of being cut "
                        "(TEI's /rerank follows its request's own 'truncate' field either way)")
    p.add_argument("--max-instruction-chars", type=int, default=2000, help="characters per instruction (default 2000)")
    p.add_argument("--max-json-depth", type=int, default=16, help="JSON nesting depth at most (default 16)")
    p.add_argument("--max-int-digits", type=int, default=32, help="digits per JSON integer at most (default 32)")
    p.add_argument("--max-body-mb", type=float, default=10.0, help="request body size limit in MB (default 10)")
    p.add_argument("--timeout-s", type=float, default=60.0, help="answer within this many seconds or 504 (default 60)")
    p.add_argument("--max-queue-requests", type=int, default=256,
                   help="rerank requests waiting or running at most; more get 503 + Retry-After (default 256)")
    p.add_argument("--max-connections", type=int, default=1000,
                   help="open connections at most; when full the longest-idle one is closed (default 1000)")
    p.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="a request's headers must arrive within this many seconds, else 408 (default 10)")
    p.add_argument("--read-timeout-s", type=float, default=30.0,
                   help="longest pause while reading a body before the connection closes (default 30)")
    p.add_argument("--keep-alive-s", type=float, default=5.0, help="idle keep-alive connections close after (default 5)")
    p.add_argument("--allow-host", action="append", default=None, metavar="HOST",
                   help="also answer this Host name (repeatable; '*': any). A keyless loopback server answers "
                        "loopback names only")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="answer cross-origin requests (CORS) from this origin (repeatable; '*': any)")
    p.add_argument("--docs", action="store_true", help="serve /docs and /openapi.json (off by default)")
    p.add_argument("--no-tracing", action="store_true",
                   help="no OpenTelemetry spans even when opentelemetry is installed")
    p.add_argument("--drain-s", type=float, default=None,
                   help="on SIGTERM wait at most this long for requests in flight (default: --timeout-s)")
    p.set_defaults(func=cmd_serve, no_progress=True)


def allowed_hosts(host: str, api_key: str | None, extra: list[str] | None) -> list[str] | None:
    """The Host names answered: a keyless server bound to loopback answers loopback names (plus
    ``extra``); any other server every name unless ``--allow-host`` narrows it."""
    if extra is None:
        return ["loopback"] if not api_key and is_loopback(host) else None
    return ["loopback", *(h.lower() for h in extra)]


def check_bind(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse a non-loopback address without an API key (unless ``insecure``)."""
    if api_key or insecure or is_loopback(host):
        return
    raise UsageError(f"--host {host} is reachable from other machines: give --api-key (or RANKSTACK_API_KEY), "
                         "or --insecure to serve without one")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: resolve it
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def cmd_serve(args) -> int:
    from rankstack.rerankers.commands import reranker_from_args
    from rankstack.rerankers.registry import register
    from rankstack.serve.app import ServeConfig, create_app
    from rankstack.serve.server import ConnectionLimits, bind_socket, run_server

    api_key = args.api_key or os.environ.get("RANKSTACK_API_KEY") or None
    check_bind(args.host, api_key, args.insecure)
    if ":" in args.reranker:  # module:Class, a reranker of the user's own
        register(args.reranker, args.reranker)
    sock = bind_socket(args.host, args.port)  # before loading the model: a taken port fails fast
    reranker = reranker_from_args(args)
    model = args.model or getattr(getattr(reranker, "backend", None), "model_id", None) or getattr(reranker, "model_name", "")
    name = args.model_name or (f"{args.reranker}:{model}" if model else args.reranker)
    config = ServeConfig(model_name=name, api_key=api_key, max_body_mb=args.max_body_mb, max_docs=args.max_docs,
                         max_doc_chars=args.max_doc_chars, max_query_chars=args.max_query_chars,
                         max_query_tokens=args.max_query_tokens, max_instruction_chars=args.max_instruction_chars,
                         truncate=args.truncate, max_json_depth=args.max_json_depth, max_int_digits=args.max_int_digits,
                         timeout_s=args.timeout_s, max_batch_docs=args.max_batch_docs, max_wait_ms=args.max_wait_ms,
                         max_queue_docs=args.max_queue_docs, max_queue_requests=args.max_queue_requests,
                         allowed_hosts=allowed_hosts(args.host, api_key, args.allow_host),
                         allowed_origins=args.allow_origin, docs=args.docs, tracing=not args.no_tracing)
    limits = ConnectionLimits(args.header_timeout_s, args.read_timeout_s, args.keep_alive_s, args.max_connections)
    app = create_app(reranker, config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"rankstack serve: http://{shown}:{port} ({name}; POST /v1/rerank /v2/rerank /rerank)", flush=True)
    levels = {0: "warning", 1: "info"}
    run_server(app, sock, args.timeout_s if args.drain_s is None else args.drain_s,
               levels.get(getattr(args, "verbose", 0), "debug"), limits)
    return 0
