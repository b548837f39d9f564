"""Where rankstack keeps files: the cache root (models, score cache, downloads) and the data root.

- ``$RANKSTACK_CACHE`` (default ``~/.cache/rankstack``): dequantized models, the SQLite score
  cache, downloaded datasets;
- ``$RANKSTACK_DATA``: a folder holding named datasets (``dl19/``, ``vaswani/``, ``cacm/``); a
  checkout beside ``../shared/data`` finds that folder without the variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("RANKSTACK_CACHE", Path.home() / ".cache" / "rankstack"))


def data_root() -> Path | None:
    env = os.environ.get("RANKSTACK_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "shared" / "data"  # checkout beside ../shared
    return here if here.is_dir() else None


def default_score_cache() -> str:
    """The reranker score cache: ``$RANKSTACK_RERANK_CACHE`` or ``<cache root>/rerank_cache.sqlite``."""
    return os.environ.get("RANKSTACK_RERANK_CACHE", str(cache_root() / "rerank_cache.sqlite"))
