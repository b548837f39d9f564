"""Running the app: a socket bound before the model loads, uvicorn with a drain phase on SIGTERM,
connections that cannot starve the server, and malformed HTTP answered with the JSON error body.

Connections (:class:`ConnectionLimits`, the ``rankstack serve`` flags):

- ``header_timeout_s``: a request's headers must arrive within this many seconds of its first
  byte (of the connection's opening, for the first request); else 408 and the connection closes.
  uvicorn has no such timeout: a socket that never finishes its headers would stay open forever.
- ``read_timeout_s``: the longest pause while a body is read; then the connection closes (the
  app sees the client gone: 499).
- ``keep_alive_s``: an idle keep-alive connection closes after this (uvicorn's).
- ``max_connections``: open connections at most (also held under the process's file limit,
  whose soft value is raised to the hard one at start). When full, the connection idle the
  longest (no request in flight) is closed to make room; only when every one has a request in
  flight is a new one answered 503. So hundreds of idle sockets never keep ``/health`` from
  answering. (Queued rerank requests have their own cap: ``max_queue_requests``, 503 +
  ``Retry-After``.)
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import socket
import time
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from rankstack.errors import RankstackError
from rankstack.serve.errors import error_body

log = logging.getLogger(__name__)

FILE_RESERVE = 128  # descriptors kept for the model, caches and logs, below the connection cap


@dataclass
class ConnectionLimits:
    header_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: any free port; ``getsockname()`` tells which)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RankstackError(f"cannot bind {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    return sock


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain phase: the first SIGTERM/SIGINT sets ``state.draining`` (the
    app answers new requests 503) and the server stops once no request is in flight or
    ``drain_s`` has passed; then uvicorn's own graceful shutdown runs. A second signal is
    uvicorn's (immediate) exit."""

    def __init__(self, config: uvicorn.Config, state, drain_s: float):
        super().__init__(config)
        self.state, self.drain_s = state, drain_s
        self.drain_deadline: float | None = None

    def handle_exit(self, sig, frame):
        if self.drain_deadline is None and sig in (signal.SIGTERM, signal.SIGINT):
            log.warning("signal %d: draining (new requests get 503)", sig)
            self.state.draining = True
            self.drain_deadline = time.monotonic() + self.drain_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and (self.state.in_flight == 0 or time.monotonic() > self.drain_deadline):
            self.should_exit = True
        return await super().on_tick(counter)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the connection limits of the module docstring, and a malformed
    request (negative or non-numeric Content-Length, a bad header line) answered with the JSON
    error body instead of plain text."""

    limits = ConnectionLimits()

    def connection_made(self, transport) -> None:
        if len(self.connections) >= self.limits.max_connections and not self._evict_idle():
            super().connection_made(transport)
            self._answer_and_close(503, "unavailable", "too many open connections; retry later", b"Retry-After: 1")
            return
        super().connection_made(transport)
        self.last_active = time.monotonic()
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._headers_late)

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest (no request in flight); False when none is idle."""
        idle = [c for c in self.connections if getattr(c, "last_active", None) is not None and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.last_active)
        oldest.transport.close()
        self.connections.discard(oldest)
        return True

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self, seconds: float, callback) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self._idle():
            self._answer_and_close(408, "request_timeout", f"the request headers did not arrive within "
                                   f"{self.limits.header_timeout_s:g} s")

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # the app's read sees the client gone (499)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        waiting_headers = self._idle()
        if waiting_headers and getattr(self, "_deadline", None) is None:
            self._arm(self.limits.header_timeout_s, self._headers_late)  # the first byte of the next request
        super().data_received(data)
        if not self._idle() and self.cycle is not None:
            if self.cycle.more_body and not self.cycle.disconnected:
                self._arm(self.limits.read_timeout_s, self._body_late)
            else:
                self._disarm()  # the request is in: the app's timeout takes over

    def on_response_complete(self) -> None:
        self.last_active = time.monotonic()
        self._disarm()
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(400, "bad_request", "malformed HTTP request (e.g. a negative or non-numeric "
                               "Content-Length, a bad header line)")

    def _answer_and_close(self, status: int, type: str, message: str, extra: bytes = b"") -> None:
        body = json.dumps(error_body(type, message)).encode()
        reason = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}[status]
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n"
                % (status, reason, len(body)))
        if extra:
            head += extra + b"\r\n"
        if not self.transport.is_closing():
            self.transport.write(head + b"\r\n" + body)
            self.transport.close()


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def protocol_for(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class with ``limits``, the connection cap held under the file limit."""
    soft = raise_file_limit()
    cap = limits.max_connections
    if soft != resource.RLIM_INFINITY and cap > soft - FILE_RESERVE:
        cap = max(16, soft - FILE_RESERVE)
        log.warning("--max-connections %d is over the open-file limit %d: using %d", limits.max_connections, soft, cap)
    bound = ConnectionLimits(limits.header_timeout_s, limits.read_timeout_s, limits.keep_alive_s, cap)
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": bound})


def run_server(app, sock: socket.socket, drain_s: float = 60.0, log_level: str = "warning",
               limits: ConnectionLimits | None = None) -> None:
    """Serve ``app`` on ``sock`` until a signal, then drain (see :class:`DrainingServer`)."""
    limits = limits or ConnectionLimits()
    config = uvicorn.Config(app, log_level=log_level, http=protocol_for(limits), lifespan="on",
                            timeout_keep_alive=max(1, round(limits.keep_alive_s)),
                            timeout_graceful_shutdown=int(drain_s) + 5)
    server = DrainingServer(config, app.state, drain_s)
    app.state.metrics.connections.set_function(lambda: len(server.server_state.connections))
    server.run(sockets=[sock])
