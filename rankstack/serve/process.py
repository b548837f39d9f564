"""``rankstack serve`` as a child process: start it on a free loopback port, wait until it answers,
stop it with SIGTERM (its drain). Used by the tests and the load and fault benchmarks; handy in
notebooks too.

    with ServerProcess(["--reranker", "dense", "--model", "minilm-l6"]) as srv:
        rankstack.RemoteReranker(srv.url).rerank("q", ["a", "b"])
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from rankstack.errors import RankstackError


class ServerProcess:
    """``python -m rankstack.cli serve --port 0 ARGS``; ``url`` once started. ``env`` adds variables
    (e.g. ``PYTHONPATH`` for a ``module:Class`` reranker); stderr goes to ``log_path``."""

    def __init__(self, args: list[str], env: dict | None = None, start_timeout: float = 300.0,
                 log_path: str | Path | None = None):
        self.args, self.env, self.start_timeout = list(args), env or {}, start_timeout
        self.log_path = Path(log_path or tempfile.mkstemp(prefix="rankstack-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ServerProcess:
        with open(self.log_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "rankstack.cli", "serve", "--port", "0", *self.args],
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         env={**os.environ, **self.env})
        timer = threading.Timer(self.start_timeout, self.proc.kill)
        timer.start()
        before: list[str] = []  # what a library printed to stdout first (NNCF's progress bars, say)
        m = None
        try:
            for line in self.proc.stdout:  # the command prints its URL once the socket is bound
                m = re.search(r"http://[\w.\[\]:-]+:\d+", line)
                if m:
                    break
                before.append(line)
        finally:
            timer.cancel()
        if not m:
            self.proc.kill()
            raise RankstackError(f"rankstack serve did not start: {''.join(before[-5:])!r}\n{self.log_tail()}")
        self.url = m.group(0)
        # keep reading stdout, so that a full pipe never blocks the server; it goes to the log
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=5).close()
                return self
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.proc.kill()
        raise RankstackError(f"rankstack serve never answered /health\n{self.log_tail()}")

    def _drain(self) -> None:
        with open(self.log_path, "a") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the server drains), then the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RankstackError(f"rankstack serve did not stop within {timeout:g}s") from None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def raw_http(url: str, request: bytes, timeout: float = 60.0) -> tuple[int, object]:
    """Send raw bytes (malformed requests a client library would refuse to send) and return the
    status and the JSON body (or text) of the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split()[1]), json.loads(body)
    except (IndexError, ValueError):
        return (int(head.split()[1]) if head else 0), body.decode("utf-8", "replace")
