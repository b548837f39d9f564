"""Token counts from an OpenAI-compatible server that has no local tokenizer beside it: its
``/tokenize`` endpoint (llama.cpp, vLLM; ``/extras/tokenize`` for llama-cpp-python), else an
approximation of ``chars_per_token`` characters per token (logged once: truncation is then only
approximate)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from rankstack.rerankers.backends.base import BackendError

log = logging.getLogger(__name__)

#: (path, body maker, detokenize path, detokenized text key): llama.cpp and vLLM, then llama-cpp-python
ROUTES = (("/tokenize", lambda m, t: {"model": m, "content": t, "prompt": t, "add_special": False,
                                      "add_special_tokens": False}, "/detokenize", ("content", "prompt")),
          ("/extras/tokenize", lambda m, t: {"model": m, "input": t}, "/extras/detokenize", ("text",)))


class ServerTokens:
    """Counting and cutting text with a server's tokenizer.

    Args:
        post: ``post(route, body, absent)`` -> the decoded JSON answer of ``POST root + route``
            (``absent``: an HTTP 400/404/405/501 is raised as ``openai.APIStatusError``).
        root: the server's root URL, for the log.
        model_id: the model name sent in the bodies.
        chars_per_token: the approximation without a tokenize endpoint.
    """

    def __init__(self, post: Callable, root: str, model_id: str, chars_per_token: float = 4.0):
        self.post, self.root, self.model_id = post, root, model_id
        self.chars_per_token = float(chars_per_token)
        self.available: bool | None = None  # None: not tried yet
        self.route: tuple | None = None

    def ids(self, text: str) -> list[int] | None:
        """Token ids from the server, or None when it has no tokenize endpoint (then the
        approximation is used from then on).

        Args:
            text: the text.

        Returns:
            The ids, or None.

        Raises:
            BackendError: the endpoint worked before and fails now.
        """
        import openai

        if self.available is False:
            return None
        errors = []
        for route in ROUTES if self.route is None else (self.route,):
            try:
                out = self.post(route[0], route[1](self.model_id, text), absent=True)
                ids = [t["id"] if isinstance(t, dict) else int(t) for t in out["tokens"]]
            except (openai.APIStatusError, KeyError, TypeError, ValueError) as e:
                errors.append(f"{route[0]}: {e}")
                continue
            self.available, self.route = True, route
            return ids
        if self.available:  # it worked before: a real failure
            raise BackendError(f"tokenizing on {self.root} failed: {'; '.join(errors)}")
        log.warning("%s has no usable tokenize endpoint (%s); token counts approximate %.1f characters per token",
                    self.root, "; ".join(errors), self.chars_per_token)
        self.available = False
        return None

    def count(self, text: str) -> int:
        """Tokens in ``text`` (the server's count, else the approximation).

        Args:
            text: the text.

        Returns:
            The number of tokens.
        """
        ids = self.ids(text)
        return len(ids) if ids is not None else math.ceil(len(text) / self.chars_per_token)

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` tokens: detokenized by the server, else cut at a space
        near ``max_tokens * chars_per_token`` characters.

        Args:
            text: the text.
            max_tokens: the budget.

        Returns:
            The text, cut where it is longer.
        """
        ids = self.ids(text)
        if ids is not None:
            if len(ids) <= max_tokens:
                return text
            _, _, detok, keys = self.route
            out = self.post(detok, {"model": self.model_id, "tokens": ids[:max_tokens]}, absent=False)
            return next((out[k] for k in keys if k in out), "")
        limit = int(max_tokens * self.chars_per_token)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        space = cut.rfind(" ")
        return cut[:space] if space > limit // 2 else cut
