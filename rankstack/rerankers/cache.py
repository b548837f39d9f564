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
    """Model outputs in SQLite (WAL mode: several processes may share one file), keyed by
    (fingerprint, digest of the request's key); what makes a repeated run free and an interrupted
    one resume.

    Args:
        path: the SQLite file (its folder is made).
    """
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
        """The stored key of a request key.

        Args:
            text: a request's :meth:`key`.

        Returns:
            Its SHA-256, hex.
        """
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, fingerprint: str, keys: list[str]) -> dict[str, object]:
        """The stored values of some keys.

        Args:
            fingerprint: the namespace (a reranker's fingerprint).
            keys: digests.

        Returns:
            ``{digest: value}`` for the keys held (JSON-decoded).
        """
        out: dict[str, object] = {}
        with self._lock:
            for s in range(0, len(keys), 500):
                chunk = keys[s: s + 500]
                q = f"SELECT key, value FROM outputs WHERE fingerprint = ? AND key IN ({','.join('?' * len(chunk))})"
                for k, v in self._con.execute(q, [fingerprint, *chunk]):
                    out[k] = json.loads(v)
        return out

    def put_many(self, fingerprint: str, items: list[tuple[str, str, object]]) -> None:
        """Store values, committed at once.

        Args:
            fingerprint: the namespace.
            items: ``(digest, qid, value)`` triples (``value`` JSON-ready).
        """
        with self._lock:
            self._con.executemany("INSERT OR REPLACE INTO outputs VALUES (?,?,?,?)",
                                  [(fingerprint, k, q, json.dumps(v)) for k, q, v in items])
            self._con.commit()

    def count(self, fingerprint: str | None = None) -> int:
        """Rows stored.

        Args:
            fingerprint: only this namespace (None: all).

        Returns:
            The number of rows.
        """
        with self._lock:
            if fingerprint is None:
                return self._con.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]
            return self._con.execute("SELECT COUNT(*) FROM outputs WHERE fingerprint = ?", (fingerprint,)).fetchone()[0]

    def close(self) -> None:
        self._con.close()


def default_cache_path() -> str:
    """Where ``cache=True`` keeps its scores (``$RANKSTACK_RERANK_CACHE``, else under ``$RANKSTACK_CACHE``).

    Returns:
        The SQLite file's path.
    """
    return default_score_cache()
