"""SQLite cache of model outputs, keyed by (reranker fingerprint, request).

A request's key holds the full prompt (so the query and the window or document content) and
the decoding parameters. Every finished chunk of requests is committed, so an interrupted
``rerank_run`` resumes where it stopped and a repeated run makes no model calls.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from rankstack.paths import default_score_cache


class ScoreCache:
    def __init__(self, path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("CREATE TABLE IF NOT EXISTS outputs (fingerprint TEXT, key TEXT, qid TEXT, value TEXT, "
                          "PRIMARY KEY (fingerprint, key))")
        self._con.commit()

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, fingerprint: str, keys: list[str]) -> dict[str, object]:
        out: dict[str, object] = {}
        with self._lock:
            for s in range(0, len(keys), 500):
                chunk = keys[s: s + 500]
                q = f"SELECT key, value FROM outputs WHERE fingerprint = ? AND key IN ({','.join('?' * len(chunk))})"
                for k, v in self._con.execute(q, [fingerprint, *chunk]):
                    out[k] = json.loads(v)
        return out

    def put_many(self, fingerprint: str, items: list[tuple[str, str, object]]) -> None:
        """``items``: (key, qid, value). Committed at once."""
        with self._lock:
            self._con.executemany("INSERT OR REPLACE INTO outputs VALUES (?,?,?,?)",
                                  [(fingerprint, k, q, json.dumps(v)) for k, q, v in items])
            self._con.commit()

    def count(self, fingerprint: str | None = None) -> int:
        with self._lock:
            if fingerprint is None:
                return self._con.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]
            return self._con.execute("SELECT COUNT(*) FROM outputs WHERE fingerprint = ?", (fingerprint,)).fetchone()[0]

    def close(self) -> None:
        self._con.close()


def default_cache_path() -> str:
    return default_score_cache()
