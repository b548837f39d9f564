"""Passages of long documents: token windows with overlap, and how passage scores make a document's.

Shared by the rerankers (:mod:`rankstack.rerankers.chunking`) and the first stage
(:mod:`rankstack.retrieval.chunked`). A document whose body is longer than ``tokens`` tokens (of a
tokenizer's, or whitespace words without one) becomes windows of ``tokens`` tokens starting every
``stride`` tokens, the last window ending at the document's end; a title goes in front of every
passage. Passage texts are cut from the original text at token offsets (nothing decoded back).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankstack.errors import RankstackError
from rankstack.types import Doc

AGGREGATES = ("max", "first", "mean", "sum")
SEP = "\x1f"  # chunk docid = docid + SEP + index (docids never hold control characters)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunking:
    """``tokens`` per chunk, a new chunk every ``stride`` tokens, chunk scores combined by ``aggregate``."""

    tokens: int
    stride: int
    aggregate: str = "max"

    @classmethod
    def make(cls, tokens: int | None, stride: int | None = None, aggregate: str = "max") -> Chunking | None:
        """None without ``tokens``; a clear error for a bad value."""
        if aggregate not in AGGREGATES:
            raise RankstackError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if tokens is None:
            if stride is not None:
                raise RankstackError("chunk_stride needs chunk_tokens")
            return None
        tokens = int(tokens)
        stride = max(1, tokens // 2) if stride is None else int(stride)
        if tokens < 1:
            raise RankstackError(f"chunk_tokens must be >= 1, got {tokens}")
        if not 1 <= stride <= tokens:
            raise RankstackError(f"chunk_stride must be in 1..chunk_tokens ({tokens}), got {stride}")
        return cls(tokens, stride, aggregate)


def token_spans(tokenizer, text: str) -> list[tuple[int, int]]:
    """Character spans of ``text``'s tokens: the tokenizer's offsets (a fast tokenizer), else whitespace words."""
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        return [(a, b) for a, b in enc["offset_mapping"] if b > a]
    return [m.span() for m in _WORD.finditer(text)]


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    if tokenizer is None:
        return [len(_WORD.findall(t)) for t in texts]
    enc = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
    return [len(ids) for ids in enc["input_ids"]]


def split_text(text: str, spans: list[tuple[int, int]], tokens: int, stride: int) -> list[str]:
    """Windows of ``tokens`` tokens every ``stride`` tokens; the last one ends at the end of ``text``."""
    n = len(spans)
    if n <= tokens:
        return [text]
    starts = list(range(0, n - tokens, stride)) + [n - tokens]
    return [text[spans[s][0]: spans[s + tokens - 1][1]] for s in starts]


def split_doc(doc: Doc, tokenizer, chunking: Chunking) -> list[str]:
    """The chunks of ``doc`` (its title in front of each); one chunk when it fits."""
    parts = split_text(doc.text, token_spans(tokenizer, doc.text), chunking.tokens, chunking.stride)
    return [f"{doc.title}\n{p}" if doc.title else p for p in parts]


def aggregate(scores: Sequence[float], how: str) -> float:
    if how == "max":
        return float(max(scores))
    if how == "first":
        return float(scores[0])
    if how == "mean":
        return float(np.mean(scores))
    return float(np.sum(scores))
