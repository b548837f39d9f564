"""The ASGI middleware in front of every route: draining, Host and Origin checks, the API key,
request metrics, and a last-resort JSON 500 (one log line, no traceback at the default level).

Host and origin (``allowed_hosts`` / ``allowed_origins`` of :class:`~rankstack.serve.app.ServeConfig`):
a keyless server on loopback answers only ``Host`` values that name loopback (``localhost``,
``127.x.x.x``, ``[::1]``, any port), so a web page cannot reach it through DNS rebinding (400
``invalid_host``). A keyless server also refuses what a browser may send cross-site without
asking first: a request whose ``Origin`` is not the server's own or an allowed one (403
``forbidden_origin``), and a POST with a "simple" content type (``text/plain``, form data: 415
``unsupported_media_type``; send ``application/json``). ``--allow-host`` and ``--allow-origin``
(``*``: any) widen them; an allowed origin also gets CORS answers (Starlette's ``CORSMiddleware``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from rankstack.serve.errors import STATUS_TYPES, error_response

log = logging.getLogger(__name__)

OPEN_ROUTES = ("/health",)  # answered without the API key (load balancers probe it)
KNOWN_ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank", "/health", "/metrics", "/v1/models", "/info")
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def _header(scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v
    return None


def host_name(host: str) -> str:
    """``Host`` header -> the name alone (``[::1]:8000`` -> ``::1``, ``localhost:80`` -> ``localhost``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Guard:
    """Pure ASGI middleware (see the module docstring); ``state`` is the app's state."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    def refusal(self, scope):
        """The error answer this request gets before reaching a route, or None."""
        state, config = self.state, self.state.config
        if state.draining:
            return error_response(503, "unavailable", "the server is shutting down", {"Retry-After": "1"})
        host = (_header(scope, b"host") or b"").decode("latin-1")
        if config.allowed_hosts is not None and "*" not in config.allowed_hosts:
            name = host_name(host)
            if not (name in config.allowed_hosts or ("loopback" in config.allowed_hosts and is_loopback_name(name))):
                return error_response(400, "invalid_host", f"Host {host[:100]!r} is not served here (a keyless server "
                                      "answers loopback names only; --allow-host widens it)")
        if not config.api_key and "*" not in config.allowed_origins:
            origin = (_header(scope, b"origin") or b"").decode("latin-1")
            if origin and origin not in config.allowed_origins and origin != f"http://{host}":
                return error_response(403, "forbidden_origin", f"cross-origin requests from {origin[:100]!r} are "
                                      "refused (--allow-origin allows one)")
            ctype = (_header(scope, b"content-type") or b"").decode("latin-1").split(";")[0].strip().lower()
            if scope["method"] == "POST" and ctype in SIMPLE_TYPES:
                return error_response(415, "unsupported_media_type", f"Content-Type {ctype} is refused; send "
                                      "application/json")
        if scope["method"] == "OPTIONS":
            return None  # a CORS preflight carries no key
        if config.api_key and scope["path"] not in OPEN_ROUTES and not _authorized(scope, config.api_key):
            return error_response(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)",
                                  {"WWW-Authenticate": "Bearer"})
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state, path = self.state, scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        status = {"code": 500, "started": False}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        t0 = time.perf_counter()
        state.in_flight += 1
        state.metrics.in_flight.inc()
        try:
            resp = self.refusal(scope)
            if resp is not None:
                state.metrics.errors.labels(STATUS_TYPES.get(resp.status_code, "refused")).inc()
                await resp(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        except Exception as e:  # noqa: BLE001 - answered as JSON; the content of a request is never logged
            log.error("internal error on %s: %s", route, type(e).__name__)
            log.debug("internal error", exc_info=True)
            state.metrics.errors.labels("internal_error").inc()
            if not status["started"]:
                await error_response(500, "internal_error", type(e).__name__)(scope, receive, send_status)
        finally:
            state.in_flight -= 1
            state.metrics.in_flight.dec()
            state.metrics.requests.labels(route, str(status["code"])).inc()
            state.metrics.latency.labels(route).observe(time.perf_counter() - t0)


def _authorized(scope, key: str) -> bool:
    header = _header(scope, b"authorization") or b""
    scheme, _, token = header.partition(b" ")
    # constant-time comparison of the token (the scheme is not secret)
    return hmac.compare_digest(token.strip(), key.encode()) and scheme.lower() == b"bearer"
