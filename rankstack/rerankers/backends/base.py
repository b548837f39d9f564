"""The backend interface: a reranker builds prompts and parses outputs; a backend runs them.

Two calls cover almost every paradigm:
- :meth:`Backend.next_token_logprobs` — one forward pass per prompt, log-probabilities of a
  few candidate next tokens (yes/no, score digits, FIRST's letters, ProRank's 0/1);
- :meth:`Backend.generate` — sampled or greedy completions with token log-probs;
and a third for query likelihood: :meth:`Backend.continuation_logprobs` — one teacher-forced
forward pass per (prompt, continuation), the log-prob of every continuation token.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rankstack.errors import RankstackError


@dataclass(frozen=True)
class Prompt:
    """Chat messages plus an optional assistant prefix (FIRST's ``[``, ``<answer>``).

    ``messages`` are ``{"role", "content"}`` dicts rendered with the model's own chat template
    (generation prompt added); ``assistant_prefix`` is appended verbatim after it. A backend
    without a chat template joins the messages as plain text.
    """

    messages: tuple[tuple[str, str], ...]
    assistant_prefix: str = ""

    @classmethod
    def chat(cls, user: str, system: str | None = None, assistant_prefix: str = "",
             history: Sequence[tuple[str, str]] = ()) -> Prompt:
        msgs: list[tuple[str, str]] = [("system", system)] if system else []
        msgs += list(history)
        msgs.append(("user", user))
        return cls(tuple(msgs), assistant_prefix)

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def key(self) -> str:
        """A stable text key for caches."""
        return "\x1e".join(f"{r}\x1f{c}" for r, c in self.messages) + "\x1d" + self.assistant_prefix


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self):
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if self.temperature == 0.0 and self.n > 1:
            raise ValueError("n > 1 samples need temperature > 0 (greedy decoding gives n identical outputs)")


@dataclass
class Completion:
    text: str
    token_logprobs: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    finish_reason: str = "stop"

    @property
    def num_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))


def tokens_for_text(decode, ids: Sequence[int], text: str) -> int:
    """How many leading generated tokens make up ``text``, the completion as returned (a stop
    string or end-of-sequence token cut off): the fewest whose decoding covers it. A token that
    straddles the end of ``text`` is kept (it wrote part of it). ``decode``: ids -> text."""
    if not text:
        return 0
    if len(decode(list(ids))) < len(text):
        return len(ids)
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(decode(list(ids[:mid]))) >= len(text):
            hi = mid
        else:
            lo = mid + 1
    return lo


class TokenMemo:
    """Token ids of the texts and prompts a backend tokenized last, so each is tokenized once:
    a window's prompt is measured by ``fit_prompt`` and then run by the backend, a passage is
    counted and then cut. Bounded (least recently used out first); ids kept as int32 arrays.

    ``hits`` and ``misses`` count lookups; ``tokenized_tokens`` the tokens actually produced.
    """

    def __init__(self, capacity: int = 4096):
        self.capacity = int(capacity)
        self._ids: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # backends with client threads (openai) may share one
        self.hits = self.misses = self.tokenized_tokens = 0

    def lookup(self, keys: Sequence[Hashable], tokenize: Callable[[list], list[list[int]]]) -> list[list[int]]:
        """Ids for every key; ``tokenize`` is called once, on the keys not held (in one batch)."""
        with self._lock:
            held = {k: self._ids[k] for k in dict.fromkeys(keys) if k in self._ids}
            for k in held:
                self._ids.move_to_end(k)
        missing = [k for k in dict.fromkeys(keys) if k not in held]
        fresh = dict(zip(missing, tokenize(missing))) if missing else {}
        out = [list(fresh[k]) if k in fresh else held[k].tolist() for k in keys]
        with self._lock:
            self.misses += len(missing)
            self.hits += len(keys) - len(missing)
            for k, ids in fresh.items():
                self.tokenized_tokens += len(ids)
                if self.capacity > 0:
                    self._ids[k] = np.asarray(ids, dtype=np.int32)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
        return out


def token_memo(backend) -> TokenMemo:
    """The backend's :class:`TokenMemo` (made on first use)."""
    memo = getattr(backend, "_token_memo", None)
    if memo is None:
        memo = backend._token_memo = TokenMemo()
    return memo


class BackendError(RankstackError, RuntimeError):
    """The backend cannot do what was asked (e.g. no log-probs from this server, an unknown backend)."""


class Backend(ABC):
    """Runs prompts on one model. Subclasses: ``hf``, ``openai``, ``vllm``."""

    name: str = "backend"
    model_id: str = ""
    supports_logprobs: bool = True
    #: requests per call the engine hands over (each call's answers are committed to the cache
    #: before the next); 0: a whole round at once (an engine with continuous batching)
    chunk_size: int = 64

    def fingerprint(self) -> str:
        """Identifies the model for caches: same fingerprint, same outputs."""
        return f"{self.name}:{self.model_id}"

    # --- token budget ---------------------------------------------------------------
    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @abstractmethod
    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to at most ``max_tokens`` tokens (whole tokens, decoded back)."""

    @property
    def context_length(self) -> int:
        return 8192

    # --- model calls ----------------------------------------------------------------
    @abstractmethod
    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        """Log-probabilities (float32, over the whole vocabulary) that the next token after each
        prompt is each candidate string, shape ``(len(prompts), len(candidates))``.

        Each candidate must be a single token of this model's tokenizer (a
        :class:`BackendError` otherwise). A backend that only sees the top-k alternatives
        (OpenAI-compatible servers) returns ``-inf`` for candidates outside them.
        """

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams()) -> list[list[Completion]]:
        """``params.n`` completions for each prompt (a list per prompt, in prompt order)."""

    def continuation_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Teacher-forced log-probabilities of each continuation's tokens after its rendered prompt
        (the prompt's chat template with the generation prompt, then the continuation): one float32
        array per pair, one value per continuation token (empty for an empty continuation)."""
        raise BackendError(f"the {self.name} backend cannot score continuations (query likelihood); "
                           "use the hf or vllm backend, or an OpenAI-compatible server with echo + logprobs")
