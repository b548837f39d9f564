"""Index backend name -> retriever class, and :func:`load_retriever` to reopen any index folder.

The backends import :mod:`rankstack.retrieval.base`; this module imports them lazily (by name),
so optional dependencies stay optional and no module imports its own importer.
"""

from __future__ import annotations

import importlib

from rankstack.errors import IndexMismatchError
from rankstack.retrieval.base import Retriever, read_manifest

#: manifest ``backend`` -> "module:Class"
RETRIEVERS: dict[str, str] = {
    "bm25s": "rankstack.retrieval.bm25:BM25Retriever",
    "lucene": "rankstack.retrieval.lucene:LuceneRetriever",
    "dense": "rankstack.retrieval.dense:DenseRetriever",
}


def retriever_class(backend: str) -> type[Retriever]:
    """The retriever class of an index backend name.

    Args:
        backend: ``bm25s``, ``dense`` or ``lucene`` (as an index manifest records it).

    Returns:
        The class.

    Raises:
        IndexMismatchError: an unknown backend.
    """
    try:
        target = RETRIEVERS[backend]
    except KeyError:
        raise IndexMismatchError(f"unknown index backend {backend!r}; known: {', '.join(sorted(RETRIEVERS))}") from None
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)


def load_retriever(path, **options) -> Retriever:
    """Open any rankstack index folder with the retriever that wrote it.

    Args:
        path: the index folder (its manifest names the retriever).
        **options: the retriever's ``load`` options.

    Returns:
        The retriever.
    """
    return retriever_class(read_manifest(path)["backend"]).load(path, **options)
