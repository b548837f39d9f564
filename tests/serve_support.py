"""Helpers of the serve tests: a real ``rankstack serve`` process and plain HTTP calls to it."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from rankstack.serve.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}

QUERY = "how long is the life cycle of a flea"
DOCS = ["The life cycle of a flea can last anywhere from 20 days to an entire year.",
        "Stock markets fell sharply on Monday after the announcement.",
        "Flea eggs hatch into larvae, which spin cocoons and emerge as adult fleas.",
        "A recipe for lemon cake with a crisp sugar glaze.",
        "Adult fleas live on the host and feed on blood for several weeks."]


def start_server(tmp_path: Path, *args: str) -> ServerProcess:
    return ServerProcess(list(args), env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])},
                         log_path=tmp_path / f"server-{time.monotonic_ns()}.log").start()


def call(url: str, path: str, body=None, *, method: str | None = None, headers: dict | None = None,
         raw: bytes | None = None, timeout: float = 60) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json", **AUTH, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def metric(url: str, name: str, labels: str = "") -> float:
    _, text = call(url, "/metrics")
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


