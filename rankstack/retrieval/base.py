"""The one interface every first stage follows, and the index-folder manifest.

A retriever answers ``retrieve(queries, k) -> Run``. One that owns an index saves it to a
folder with :meth:`Retriever.save`; the folder holds ``rankstack-index.json``
(``{"backend", "format_version", "params", ...}``) so that opening it with the wrong backend
or an incompatible version raises :class:`~rankstack.errors.IndexMismatchError` instead of
returning wrong results.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rankstack.errors import IndexMismatchError, RankstackError
from rankstack.types import Doc, Query, Run

log = logging.getLogger(__name__)

MANIFEST = "rankstack-index.json"

QueriesLike = Mapping[str, Query] | Mapping[str, str] | Iterable[Query]


def as_query_list(queries: QueriesLike) -> list[Query]:
    """Queries in input order; a qid given twice or an empty set raises :class:`RankstackError`."""
    if isinstance(queries, Query):
        queries = [queries]
    if isinstance(queries, Mapping):
        items = [q if isinstance(q, Query) else Query(str(qid), str(q)) for qid, q in queries.items()]
    else:
        items = list(queries)
        for q in items:
            if not isinstance(q, Query):
                raise RankstackError(f"queries must be Query objects or a qid -> text mapping, got {type(q).__name__}")
    check_unique((q.qid for q in items), "query id", "the query set")
    return items


def check_unique(ids: Iterable[str], what: str, where: str, known: Iterable[str] = ()) -> None:
    """Raise on the first id seen twice (``known``: ids already present)."""
    seen = set(known)
    for i in ids:
        if i in seen:
            raise RankstackError(f"{what} {i!r} appears twice in {where}")
        seen.add(i)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise RankstackError(f"k must be a positive integer (the number of documents per query), got {k!r}")
    return k


def iter_docs(corpus) -> Iterable[Doc]:
    """Documents from a DocStore, an iterable of Doc, or a corpus file path."""
    if isinstance(corpus, (str, Path)):
        from rankstack.data.corpus import read_corpus

        return read_corpus(corpus)
    return corpus


def collect_docs(corpus) -> list[Doc]:
    """All documents, checked: an empty corpus or a docid given twice raises."""
    docs = list(iter_docs(corpus))
    if not docs:
        raise RankstackError("the corpus is empty: nothing to index")
    check_unique((d.docid for d in docs), "docid", "the corpus")
    return docs


def corpus_digest(docs) -> str:
    """A digest of documents (ids and texts, in order): an index folder built from them says so in its manifest."""
    import hashlib

    h = hashlib.sha1()
    for d in docs:
        h.update(d.docid.encode() + b"\x1f" + d.full_text.encode() + b"\x1e")
    return h.hexdigest()


def write_manifest(path, backend: str, format_version: int, params: Mapping[str, Any], **extra) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    body = {"backend": backend, "format_version": format_version, "params": dict(params), **extra}
    (path / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def read_manifest(path, backend: str | None = None, format_version: int | None = None) -> dict[str, Any]:
    """The manifest of an index folder, checked against the backend/version that opens it."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"index folder not found: {path}")
    f = path / MANIFEST
    if not f.exists():
        raise IndexMismatchError(f"{path} is not a rankstack index folder (no {MANIFEST})")
    try:
        m = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise IndexMismatchError(f"{f}: unreadable manifest ({e.msg})") from None
    if not isinstance(m, dict) or "backend" not in m or "format_version" not in m:
        raise IndexMismatchError(f"{f}: manifest lacks backend/format_version")
    if backend is not None and m["backend"] != backend:
        raise IndexMismatchError(f"{path} holds a {m['backend']!r} index, not {backend!r}; "
                                 f"open it with the {m['backend']} retriever (or rankstack retrieve --index)")
    if format_version is not None and m["format_version"] != format_version:
        raise IndexMismatchError(f"{path}: {m['backend']} index format version {m['format_version']}, this rankstack "
                                 f"reads version {format_version}; rebuild it with rankstack index")
    return m


class Retriever(ABC):
    """A first stage: ``retrieve(queries, k) -> Run`` (rankings sorted by score, best first)."""

    backend: str = "base"
    format_version: int = 1

    @abstractmethod
    def retrieve(self, queries: QueriesLike, k: int = 1000) -> Run:
        """Top-``k`` documents for every query.

        Args:
            queries: a list of :class:`Query`, or ``{qid: Query or text}``.
            k: documents per query.

        Returns:
            A :class:`Run`, each ranking sorted by score, best first.
        """

    def save(self, path) -> None:
        """Write the index into a folder (``load_retriever`` reopens it).

        Args:
            path: the folder.

        Raises:
            RankstackError: a retriever without an index of its own.
        """
        raise RankstackError(f"the {self.backend} retriever has no index to save")

    def params(self) -> dict[str, Any]:
        """The options that define the index and its scores.

        Returns:
            ``{option: value}`` (none here).
        """
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"
