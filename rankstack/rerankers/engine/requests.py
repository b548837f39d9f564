"""The requests a program can yield, each with its cache key and its batching group.

A request's :meth:`key` names its answer in the cache (same key, same answer); its
:meth:`group` says which requests one backend call can take together (same candidates, same
sampling parameters, ...). A request type whose answer is not plain JSON says how to store it
(``to_json`` / ``from_json``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Generator
from dataclasses import asdict, dataclass

import numpy as np

from rankstack.rerankers.backends.base import Completion, Prompt, SamplingParams
from rankstack.types import Ranking


class RequestBase:
    """What every request type has (the docstrings of its :meth:`key` and :meth:`group`)."""

    def key(self) -> str:
        """The cache key: the same key is the same answer.

        Returns:
            The request's key text (the cache stores its digest).
        """
        raise NotImplementedError

    def group(self) -> tuple:
        """Which requests one backend call can take together.

        Returns:
            A hashable group (requests of equal groups are batched).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class LogprobRequest(RequestBase):
    """Next-token log-probs of ``candidates`` after ``prompt``. Result: ``list[float]``."""

    prompt: Prompt
    candidates: tuple[str, ...]

    def key(self) -> str:
        return "lp\x1d" + self.prompt.key() + "\x1d" + "\x1f".join(self.candidates)

    def group(self) -> tuple:
        return ("lp", self.candidates)


@dataclass(frozen=True)
class GenerateRequest(RequestBase):
    """Completions of ``prompt``. Result: ``list[Completion]`` (``params.n`` of them)."""

    prompt: Prompt
    params: SamplingParams

    def key(self) -> str:
        return "gen\x1d" + self.prompt.key() + "\x1d" + json.dumps(asdict(self.params), sort_keys=True)

    def group(self) -> tuple:
        return ("gen", self.params)

    @staticmethod
    def to_json(result: list[Completion]):
        """The completions as the cache stores them: a list of dicts."""
        return [asdict(c) for c in result]

    @staticmethod
    def from_json(value) -> list[Completion]:
        """The completions back from their cached dicts."""
        return [Completion(**c) for c in value]


@dataclass(frozen=True)
class LikelihoodRequest(RequestBase):
    """Teacher-forced log-probs of ``continuation``'s tokens after ``prompt`` (query likelihood).
    Result: ``list[float]``, one per continuation token."""

    prompt: Prompt
    continuation: str

    def key(self) -> str:
        return "ll\x1d" + self.prompt.key() + "\x1d" + self.continuation

    def group(self) -> tuple:
        return ("ll",)


@dataclass(frozen=True)
class PairRequest(RequestBase):
    """A (query, passage) pair for a scorer that is not a causal LM (cross-encoders). Result: float."""

    query: str
    passage: str

    def key(self) -> str:
        return "pair\x1d" + self.query + "\x1d" + self.passage

    def group(self) -> tuple:
        return ("pair",)


@dataclass(frozen=True)
class EmbedRequest(RequestBase):
    """One text to embed with a bi-encoder (``role``: ``query`` or ``passage``, which may get
    different prefixes). Result: a float32 vector. Keyed by the text, so a passage shared by
    many queries (or many runs) is encoded once and cached once."""

    text: str
    role: str = "passage"

    def key(self) -> str:
        return "emb\x1d" + self.role + "\x1d" + self.text

    def group(self) -> tuple:
        return ("emb", self.role)

    @staticmethod
    def to_json(result) -> str:  # exact float32 bytes, base64: a quarter of the size of a JSON list
        """The vector as the cache stores it: its exact float32 bytes, base64 (a quarter of a JSON list)."""
        return base64.b64encode(np.asarray(result, dtype=np.float32).tobytes()).decode("ascii")

    @staticmethod
    def from_json(value) -> np.ndarray:
        """The float32 vector back from its cached base64 text."""
        return np.frombuffer(base64.b64decode(value), dtype=np.float32)


Request = LogprobRequest | GenerateRequest | LikelihoodRequest | PairRequest | EmbedRequest
#: a paradigm's per-query logic: yields lists of requests, receives their answers, returns a Ranking
Program = Generator[list, list, Ranking]


def to_json(req, result):
    """A result as the cache stores it (JSON); a request type with its own encoding says so.

    Args:
        req: the request.
        result: its result.

    Returns:
        A JSON-ready value.
    """
    enc = getattr(req, "to_json", None)
    return enc(result) if enc else result


def from_json(req, value):
    """The inverse of :func:`to_json`: a cached value as the program receives it.

    Args:
        req: the request.
        value: the cached value.

    Returns:
        The result.
    """
    dec = getattr(req, "from_json", None)
    return dec(value) if dec else value
