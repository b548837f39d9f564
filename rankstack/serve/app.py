"""The rerank service as a FastAPI app: ``create_app(reranker, ServeConfig(...))``.

Routes (each in its API's own shape, see :mod:`rankstack.serve.schemas`): ``POST /v1/rerank``
(Jina; also Cohere v1 and infinity clients), ``POST /v2/rerank`` (Cohere v2), ``POST /rerank``
(Hugging Face TEI, or infinity's Cohere-shaped body: told apart by ``texts`` / ``documents``),
``GET /info`` (TEI's model info), ``GET /health``, ``GET /v1/models``, ``GET /metrics``
(Prometheus text). ``/docs`` and ``/openapi.json`` only with ``docs=True`` (``--docs``).

Requests go to a :class:`~rankstack.serve.batcher.Batcher` (one worker thread owns the model;
concurrent requests are merged into one engine pass); the event loop only parses, validates,
awaits futures and formats answers. Every error has the body of :mod:`rankstack.serve.errors`:
400 (body not UTF-8 / not JSON / too deep / a huge number / a lone surrogate; a foreign Host),
401 (``api_key`` set, no or wrong bearer token), 403 (a foreign Origin), 404, 405, 413 (body,
document count, document, query or instruction length over the limits with truncation off),
415 (a keyless server and a simple content type), 422 (schema: names the field), 500 (the
reranker raised; the server keeps serving), 503 (queue full, shutting down; ``Retry-After``),
504 (no answer within ``timeout_s``; ``x-should-retry: false``). A client that hangs up or times
out frees its place in the queue, or stops its pass at the next chunk. Nothing of a request's
content is logged.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from rankstack.serve.batcher import Batcher, Closed, InputTooLong, QueryLimits, QueueFull
from rankstack.serve.errors import NO_RETRY, STATUS_TYPES, ApiError, error_response, field_errors
from rankstack.serve.guard import Guard
from rankstack.serve.limits import check_limits, load_json, validate
from rankstack.serve.schemas import (
    CohereRerankRequest,
    CohereRerankResponse,
    InfinityRerankRequest,
    JinaRerankRequest,
    JinaRerankResponse,
    Scored,
    TEIRerankRequest,
    infinity_response,
    tei_info,
    tei_response,
)
from rankstack.serve.telemetry import Telemetry, set_attributes

log = logging.getLogger(__name__)

RERANK_ROUTES = {"/v1/rerank": "documents", "/v2/rerank": "documents", "/rerank": "texts"}


@dataclass
class ServeConfig:
    """Limits, batching and security of one server (the ``rankstack serve`` flags; docs/serving.md).

    ``allowed_hosts``: ``Host`` names answered (``"loopback"`` stands for every loopback name,
    ``"*"`` for any; None: any). ``allowed_origins``: origins a keyless server answers
    cross-origin (``"*"``: any). The connection settings (``header_timeout_s`` ...) are the
    server's (:mod:`rankstack.serve.server`)."""

    model_name: str = "rankstack"
    api_key: str | None = None
    max_body_mb: float = 10.0
    max_docs: int = 1000
    max_doc_chars: int = 100_000
    max_query_chars: int = 20_000
    max_query_tokens: int = 256
    max_instruction_chars: int = 2_000
    truncate: bool = True
    max_json_depth: int = 16
    max_int_digits: int = 32
    timeout_s: float = 60.0
    max_batch_docs: int = 256
    max_wait_ms: float = 10.0
    max_queue_docs: int = 4096
    max_queue_requests: int = 256
    allowed_hosts: list[str] | None = None
    allowed_origins: list[str] = field(default_factory=list)
    docs: bool = False
    tracing: bool = True


class Metrics:
    """The Prometheus series of one app (its own registry, so several apps can share a process)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rankstack_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("rankstack_request_seconds", "request latency", ["route"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.documents = Counter("rankstack_documents", "documents reranked", registry=r)
        self.model_requests = Counter("rankstack_model_requests", "model requests run (prompts, pairs, texts "
                                      "embedded): the work done, answered or not", registry=r)
        self.errors = Counter("rankstack_errors", "error answers by type", ["type"], registry=r)
        self.batch_requests = Histogram("rankstack_batch_requests", "requests merged per engine pass", registry=r,
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.batch_docs = Histogram("rankstack_batch_documents", "documents per engine pass", registry=r,
                                    buckets=(1, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))
        self.batch_seconds = Histogram("rankstack_batch_seconds", "engine pass time", registry=r,
                                       buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.in_flight = Gauge("rankstack_in_flight_requests", "requests being answered", registry=r)
        self.queued = Gauge("rankstack_queued_documents", "documents waiting for the model", registry=r)
        self.running = Gauge("rankstack_running_requests", "requests in the engine pass running now", registry=r)
        self.connections = Gauge("rankstack_open_connections", "open HTTP connections", registry=r)

    def on_batch(self, n_requests: int, n_docs: int, seconds: float) -> None:
        self.batch_requests.observe(n_requests)
        self.batch_docs.observe(n_docs)
        self.batch_seconds.observe(seconds)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes (before reading it when
    Content-Length already says so)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body has {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "payload_too_large", f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(499, "client_closed_request", "the client closed the connection") from None
    return b"".join(chunks)


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body is read: the next ASGI message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _doc_token_limit(reranker) -> int | None:
    """The documents' token limit TEI's ``truncate=false`` enforces: the reranker's own, if any."""
    return (getattr(reranker, "max_doc_tokens", None) or getattr(getattr(reranker, "encoder", None), "max_seq_length", None)
            or None)


def _install_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        metrics.errors.labels(e.type).inc()
        return error_response(e.status, e.type, e.message, e.headers, e.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        kind = STATUS_TYPES.get(e.status_code, "http_error")
        metrics.errors.labels(kind).inc()
        message = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return error_response(e.status_code, kind, message, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e: RequestValidationError):
        metrics.errors.labels("validation_error").inc()
        message, detail = field_errors(list(e.errors()))
        return error_response(422, "validation_error", message, detail=detail)


async def _await_answer(request: Request, batcher: Batcher, job, config: ServeConfig, trace) -> Scored:
    try:
        pending = batcher.submit(job, trace)
    except (QueueFull, Closed) as e:
        raise ApiError(503, "unavailable", str(e), {"Retry-After": "1"}) from None
    answer = asyncio.wrap_future(pending.future)
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait({answer, gone}, timeout=config.timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if answer not in done:
        batcher.abandon(pending)  # still queued: skipped; running: its pass stops at the next chunk
        answer.cancel()  # nobody reads its outcome
        if gone in done:
            raise ApiError(499, "client_closed_request", "the client closed the connection")
        raise ApiError(504, "timeout", f"no answer within {config.timeout_s:g} s (the work was stopped; a retry "
                                       "would repeat it)", NO_RETRY)
    try:
        return answer.result()
    except InputTooLong as e:
        raise ApiError(413, "input_too_long", f"{e} (truncation is off for this request)") from None
    except Exception as e:  # noqa: BLE001 - the reranker or its backend failed
        raise ApiError(500, "reranker_error", f"the reranker failed: {type(e).__name__}: {e}") from None


def create_app(reranker, config: ServeConfig | None = None) -> FastAPI:
    """The rerank service for ``reranker`` (any rankstack reranker; see the module docstring)."""
    config = config or ServeConfig()
    metrics = Metrics()
    tracing = Telemetry(config.tracing)
    limits = QueryLimits(config.max_query_chars, config.max_query_tokens, config.truncate, _doc_token_limit(reranker))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.batcher = Batcher(reranker, max_batch_docs=config.max_batch_docs, max_wait_ms=config.max_wait_ms,
                                    max_queue_docs=config.max_queue_docs, max_queue_requests=config.max_queue_requests,
                                    limits=limits, on_batch=metrics.on_batch, on_model=metrics.model_requests.inc,
                                    tracing=tracing)
        metrics.queued.set_function(lambda: app.state.batcher.queued_docs)
        metrics.running.set_function(lambda: app.state.batcher.running)
        log.info("rankstack serve: %s ready", config.model_name)
        try:
            yield
        finally:
            app.state.batcher.close(timeout=config.timeout_s)

    docs = {} if config.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="rankstack rerank service", version="1", lifespan=lifespan, **docs,
                  description="Jina /v1/rerank, Cohere /v2/rerank and TEI /rerank over a rankstack reranker.")
    app.state.config, app.state.metrics = config, metrics
    app.state.draining, app.state.in_flight = False, 0
    if config.allowed_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.allowed_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    app.add_middleware(Guard, state=app.state)
    _install_handlers(app, metrics)

    async def rerank(request: Request, models: tuple[type[BaseModel], ...]) -> tuple[BaseModel, Scored]:
        route = request.url.path
        with tracing.span("rankstack.rerank", route=route) as span:
            with tracing.span("rankstack.parse"):
                obj = load_json(await read_body(request, int(config.max_body_mb * 1024 * 1024)),
                                max_depth=config.max_json_depth, max_int_digits=config.max_int_digits)
                model = models[1] if len(models) > 1 and isinstance(obj, dict) and "documents" in obj else models[0]
                req = validate(obj, model)
                job = req.job()
                check_limits(job, "documents" if model is not TEIRerankRequest else "texts", config)
            set_attributes(span, documents=len(job.texts), instruction=bool(job.instruction))
            scored = await _await_answer(request, request.app.state.batcher, job, config, tracing.current())
        metrics.documents.inc(len(job.texts))
        return req, scored

    @app.post("/v1/rerank", summary="Jina rerank API (also Cohere v1 and infinity clients)")
    async def jina(request: Request):
        req, scored = await rerank(request, (JinaRerankRequest,))
        return JSONResponse(JinaRerankResponse.build(req, scored, config.model_name).model_dump(exclude_none=True))

    @app.post("/v2/rerank", summary="Cohere v2 rerank API")
    async def cohere(request: Request):
        req, scored = await rerank(request, (CohereRerankRequest,))
        return JSONResponse(CohereRerankResponse.build(req, scored).model_dump())

    @app.post("/rerank", summary="Hugging Face TEI rerank API (texts), or infinity's Cohere-shaped body (documents)")
    async def tei(request: Request):
        req, scored = await rerank(request, (TEIRerankRequest, InfinityRerankRequest))
        if isinstance(req, InfinityRerankRequest):
            return JSONResponse(infinity_response(req, scored, config.model_name))
        return JSONResponse(tei_response(req, scored))

    @app.get("/info", summary="TEI model info")
    async def info():
        return tei_info(config.model_name, config.max_query_tokens + (limits.doc_tokens or 0) or None,
                        config.max_docs, config.max_queue_requests)

    @app.get("/health")
    async def health(request: Request):
        return {"status": "ok", "model": config.model_name, "queued_documents": request.app.state.batcher.queued_docs}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": config.model_name, "object": "model", "owned_by": "rankstack"}]}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
