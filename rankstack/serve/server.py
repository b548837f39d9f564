"""Running the app: a socket bound before the model loads, uvicorn with a drain phase on SIGTERM,
and malformed HTTP answered with the JSON error body."""

from __future__ import annotations

import json
import logging
import signal
import socket
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from rankstack.errors import RankstackError

log = logging.getLogger(__name__)


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


class JSONErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol answering a malformed request (negative or non-numeric
    Content-Length, a bad header line) with the JSON error body instead of plain text."""

    def send_400_response(self, msg: str) -> None:
        message = "malformed HTTP request (e.g. a negative or non-numeric Content-Length, a bad header line)"
        body = json.dumps({"error": {"type": "bad_request", "message": message}}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def run_server(app, sock: socket.socket, drain_s: float = 60.0, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until a signal, then drain (see :class:`DrainingServer`)."""
    config = uvicorn.Config(app, log_level=log_level, http=JSONErrorH11Protocol, lifespan="on",
                            timeout_graceful_shutdown=int(drain_s) + 5)
    DrainingServer(config, app.state, drain_s).run(sockets=[sock])
