"""Seeds that are the same in every process: shuffles and sampling of the reasoning rerankers."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts) -> int:
    """A stable 31-bit seed from a base seed and labels (qid, repeat, ...), the same in every process."""
    h = hashlib.sha256(("\x1f".join(map(str, (seed, *parts)))).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF
