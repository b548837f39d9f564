"""The rerank service as a FastAPI app: ``create_app(reranker, ServeConfig(...))``.

Routes (each in its API's own shape, see :mod:`rankstack.serve.schemas`): ``POST /v1/rerank``
(Jina), ``POST /v2/rerank`` (Cohere v2), ``POST /rerank`` (Hugging Face TEI), ``GET /health``,
``GET /v1/models``, ``GET /metrics`` (Prometheus text).

Requests go to a :class:`~rankstack.serve.batcher.Batcher` (one worker thread owns the model;
concurrent requests are merged into one engine pass); the event loop only parses, validates,
awaits futures and formats answers. Every error is ``{"error": {"type", "message"}}`` with its
status: 400 (body not UTF-8 / not JSON), 401 (``api_key`` set, no or wrong bearer token), 404,
405, 413 (body, document count or document length over the limits), 422 (schema: names the
field), 500 (the reranker raised; the server keeps serving), 503 (queue full, shutting down),
504 (no answer within ``timeout_s``). A client that hangs up frees its place in the queue.
Nothing of a request's content is logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from rankstack.serve.batcher import Batcher, Closed, QueueFull
from rankstack.serve.schemas import (
    CohereRerankRequest,
    CohereRerankResponse,
    JinaRerankRequest,
    JinaRerankResponse,
    RerankJob,
    Scored,
    TEIRerankRequest,
    tei_response,
)

log = logging.getLogger(__name__)

RERANK_ROUTES = {"/v1/rerank": "documents", "/v2/rerank": "documents", "/rerank": "texts"}
OPEN_ROUTES = ("/health",)  # answered without the API key (load balancers probe it)


@dataclass
class ServeConfig:
    """Limits and batching of one server (the ``rankstack serve`` flags)."""

    model_name: str = "rankstack"
    api_key: str | None = None
    max_body_mb: float = 10.0
    max_docs: int = 1000
    max_doc_chars: int = 100_000
    timeout_s: float = 60.0
    max_batch_docs: int = 256
    max_wait_ms: float = 10.0
    max_queue_docs: int = 4096


class ApiError(Exception):
    """An error answered as ``{"error": {"type", "message"}}`` with ``status``."""

    def __init__(self, status: int, type: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type, message, headers or {}


def error_response(status: int, type: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type, "message": message}}, status_code=status, headers=headers)


_STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 413: "payload_too_large", 422: "validation_error", 503: "unavailable"}


class Metrics:
    """The Prometheus series of one app (its own registry, so several apps can share a process)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rankstack_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("rankstack_request_seconds", "request latency", ["route"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.documents = Counter("rankstack_documents", "documents reranked", registry=r)
        self.errors = Counter("rankstack_errors", "error answers by type", ["type"], registry=r)
        self.batch_requests = Histogram("rankstack_batch_requests", "requests merged per engine pass", registry=r,
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.batch_docs = Histogram("rankstack_batch_documents", "documents per engine pass", registry=r,
                                    buckets=(1, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))
        self.batch_seconds = Histogram("rankstack_batch_seconds", "engine pass time", registry=r,
                                       buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.in_flight = Gauge("rankstack_in_flight_requests", "requests being answered", registry=r)
        self.queued = Gauge("rankstack_queued_documents", "documents waiting for the model", registry=r)

    def on_batch(self, n_requests: int, n_docs: int, seconds: float) -> None:
        self.batch_requests.observe(n_requests)
        self.batch_docs.observe(n_docs)
        self.batch_seconds.observe(seconds)


class Guard:
    """Pure ASGI middleware: draining (503), the API key (401), in-flight count, request metrics."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state, path = self.state, scope["path"]
        route = path if path in RERANK_ROUTES or path in ("/health", "/metrics", "/v1/models") else "other"
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        state.in_flight += 1
        state.metrics.in_flight.inc()
        try:
            if state.draining:
                resp = error_response(503, "unavailable", "the server is shutting down", {"Retry-After": "1"})
            elif state.config.api_key and path not in OPEN_ROUTES and not _authorized(scope, state.config.api_key):
                resp = error_response(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)",
                                      {"WWW-Authenticate": "Bearer"})
            else:
                resp = None
            if resp is not None:
                state.metrics.errors.labels(_STATUS_TYPES[resp.status_code]).inc()
                await resp(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            state.in_flight -= 1
            state.metrics.in_flight.dec()
            state.metrics.requests.labels(route, str(status["code"])).inc()
            state.metrics.latency.labels(route).observe(time.perf_counter() - t0)


def _authorized(scope, key: str) -> bool:
    header = b""
    for k, v in scope.get("headers", []):
        if k == b"authorization":
            header = v
            break
    scheme, _, token = header.partition(b" ")
    # constant-time comparison of the token (the scheme is not secret)
    return hmac.compare_digest(token.strip(), key.encode()) and scheme.lower() == b"bearer"


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


def parse_body(body: bytes, model: type[BaseModel]) -> BaseModel:
    """UTF-8 (400), JSON (400), then the API's schema (422, naming the fields)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "invalid_utf8", f"the body is not UTF-8 (byte {e.start}: {e.reason})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not JSON ({e.msg}; line {e.lineno} column {e.colno})") from None
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise ApiError(422, "validation_error", validation_message(e)) from None


def validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def check_limits(job: RerankJob, field: str, config: ServeConfig) -> None:
    if not job.texts:
        raise ApiError(422, "validation_error", f"{field}: must not be empty")
    if len(job.texts) > config.max_docs:
        raise ApiError(413, "too_many_documents", f"{field}: {len(job.texts)} documents; the limit is {config.max_docs}")
    if len(job.query) > config.max_doc_chars:
        raise ApiError(413, "document_too_long",
                       f"query: {len(job.query)} characters; the limit is {config.max_doc_chars}")
    for i, t in enumerate(job.texts):
        if len(t) > config.max_doc_chars:
            raise ApiError(413, "document_too_long",
                           f"{field}.{i}: {len(t)} characters; the limit is {config.max_doc_chars}")


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body is read: the next ASGI message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(reranker, config: ServeConfig | None = None) -> FastAPI:
    """The rerank service for ``reranker`` (see the module docstring).

    Args:
        reranker: any rankstack reranker (or an object with ``rerank(query, docs)``, e.g. a
            ``RemoteReranker``); one batcher thread runs it.
        config: limits, batching and timeouts (default :class:`ServeConfig`).

    Returns:
        The FastAPI app (run it with uvicorn; ``rankstack serve`` does).
    """
    config = config or ServeConfig()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.batcher = Batcher(reranker, max_batch_docs=config.max_batch_docs, max_wait_ms=config.max_wait_ms,
                                    max_queue_docs=config.max_queue_docs, on_batch=metrics.on_batch)
        metrics.queued.set_function(lambda: app.state.batcher.queued_docs)
        log.info("rankstack serve: %s ready", config.model_name)
        try:
            yield
        finally:
            app.state.batcher.close(timeout=config.timeout_s)

    app = FastAPI(title="rankstack rerank service", version="1", lifespan=lifespan,
                  description="Jina /v1/rerank, Cohere /v2/rerank and TEI /rerank over a rankstack reranker.")
    app.state.config, app.state.metrics = config, metrics
    app.state.draining, app.state.in_flight = False, 0
    app.add_middleware(Guard, state=app.state)
    add_error_handlers(app, metrics)
    add_routes(app, config, metrics)
    return app


def add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Every error as ``{"error": {"type", "message"}}`` with its status, counted in ``metrics``.

    Args:
        app: the app.
        metrics: the service's metrics (``errors`` by type).
    """

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        metrics.errors.labels(e.type).inc()
        return error_response(e.status, e.type, e.message, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        kind = _STATUS_TYPES.get(e.status_code, "http_error")
        metrics.errors.labels(kind).inc()
        message = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return error_response(e.status_code, kind, message, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e: RequestValidationError):
        metrics.errors.labels("validation_error").inc()
        return error_response(422, "validation_error", "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()))

    @app.exception_handler(Exception)
    async def _internal_error(request, e: Exception):
        metrics.errors.labels("internal_error").inc()
        log.error("internal error: %s", type(e).__name__)
        return error_response(500, "internal_error", f"{type(e).__name__}")


def add_routes(app: FastAPI, config: ServeConfig, metrics: Metrics) -> None:
    """The rerank routes (Jina, Cohere, TEI), ``/health``, ``/v1/models`` and ``/metrics``.

    Args:
        app: the app (its ``state.batcher`` runs the reranker).
        config: the service's limits and timeout.
        metrics: the service's metrics.
    """

    async def rerank(request: Request, model: type[BaseModel]):
        req = parse_body(await read_body(request, int(config.max_body_mb * 1024 * 1024)), model)
        job = req.job()
        check_limits(job, RERANK_ROUTES[request.url.path], config)
        batcher: Batcher = request.app.state.batcher
        try:
            fut = batcher.submit(job)
        except (QueueFull, Closed) as e:
            raise ApiError(503, "unavailable", str(e), {"Retry-After": "1"}) from None
        answer = asyncio.wrap_future(fut)
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            done, _ = await asyncio.wait({answer, gone}, timeout=config.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if answer not in done:
            answer.cancel()  # still queued: the worker skips it; already running: its answer is dropped
            if gone in done:
                raise ApiError(499, "client_closed_request", "the client closed the connection")
            raise ApiError(504, "timeout", f"no answer within {config.timeout_s:g} s")
        try:
            scored: Scored = answer.result()
        except Exception as e:  # noqa: BLE001 - the reranker or its backend failed
            raise ApiError(500, "reranker_error", f"the reranker failed: {type(e).__name__}: {e}") from None
        metrics.documents.inc(len(job.texts))
        return req, scored

    @app.post("/v1/rerank", summary="Jina rerank API")
    async def jina(request: Request):
        req, scored = await rerank(request, JinaRerankRequest)
        return JSONResponse(JinaRerankResponse.build(req, scored, config.model_name).model_dump(exclude_none=True))

    @app.post("/v2/rerank", summary="Cohere v2 rerank API")
    async def cohere(request: Request):
        req, scored = await rerank(request, CohereRerankRequest)
        return JSONResponse(CohereRerankResponse.build(req, scored).model_dump())

    @app.post("/rerank", summary="Hugging Face TEI rerank API")
    async def tei(request: Request):
        req, scored = await rerank(request, TEIRerankRequest)
        return JSONResponse(tei_response(req, scored))

    @app.get("/health")
    async def health(request: Request):
        return {"status": "ok", "model": config.model_name, "queued_documents": request.app.state.batcher.queued_docs}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": config.model_name, "object": "model", "owned_by": "rankstack"}]}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
