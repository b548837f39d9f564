"""Text handling shared by the backends that hold a transformers tokenizer (``hf``, ``vllm``, and
``openai`` with a local tokenizer): chat rendering, token ids (memoised), counting, cutting.

:func:`render_chat` is the one place a :class:`~rankstack.rerankers.backends.base.Prompt` becomes
the text a model reads: the model's own chat template with the generation prompt, then the
assistant prefix (training renders its examples with it too, so inference and training see the
same text). :class:`TokenizerText` gives a backend the token methods the rerankers call.
"""

from __future__ import annotations

from collections.abc import Sequence

from rankstack.rerankers.backends.base import BackendError, Prompt, token_memo


def render_chat(tokenizer, prompt: Prompt) -> str:
    """The text a model reads for ``prompt``.

    Args:
        tokenizer: a transformers tokenizer (its ``chat_template`` is used), or None.
        prompt: chat messages and an optional assistant prefix.

    Returns:
        The chat template applied with the generation prompt (without a template, or without a
        tokenizer, the messages' contents joined by blank lines), then the assistant prefix.
    """
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(prompt.as_dicts(), tokenize=False, add_generation_prompt=True)
    else:
        text = "\n\n".join(c for _, c in prompt.messages) + "\n"
    return text + prompt.assistant_prefix


class TokenizerText:
    """Token methods of a backend that holds a transformers tokenizer in ``self.tokenizer``.

    A mixin: ``class HFBackend(TokenizerText, Backend)``. Token ids of prompts and texts are
    memoised per backend (:func:`~rankstack.rerankers.backends.base.token_memo`), so a prompt
    measured while fitting a window is not tokenized again when it runs.
    """

    tokenizer = None
    model_id: str = ""

    def render(self, prompt: Prompt) -> str:
        """The prompt as the model reads it (:func:`render_chat`).

        Args:
            prompt: chat messages and an optional assistant prefix.

        Returns:
            The rendered text.
        """
        return render_chat(self.tokenizer, prompt)

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of one rendered prompt.

        Args:
            prompt: the prompt.

        Returns:
            Its token ids (no special tokens added beyond the template's).
        """
        return self.encode_many([prompt])[0]

    def encode_many(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids of each rendered prompt (a prompt already measured is not tokenized again).

        Args:
            prompts: the prompts.

        Returns:
            One id list per prompt, in order.
        """
        if not prompts:
            return []
        return token_memo(self).lookup(list(prompts), lambda ps: self.tokenize_texts([self.render(p) for p in ps]))

    def tokenize_texts(self, texts: list[str]) -> list[list[int]]:
        """Token ids of plain texts, without special tokens (not memoised).

        Args:
            texts: the texts.

        Returns:
            One id list per text.
        """
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def text_ids(self, text: str) -> list[int]:
        """Token ids of a plain text (a passage, a query), tokenized once for counting and cutting.

        Args:
            text: the text.

        Returns:
            Its token ids.
        """
        return token_memo(self).lookup([text], self.tokenize_texts)[0]

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``.

        Args:
            text: the text.

        Returns:
            The number of tokens.
        """
        return len(self.text_ids(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` whole tokens, decoded back.

        Args:
            text: the text.
            max_tokens: the budget.

        Returns:
            ``text`` itself when it fits, else its first ``max_tokens`` tokens as text.
        """
        ids = self.text_ids(text)
        if len(ids) <= max_tokens:
            return text
        return self.tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)

    def token_id(self, candidate: str) -> int:
        """The id of a one-token candidate (``yes``, a digit, a letter).

        Args:
            candidate: the candidate's text.

        Returns:
            Its token id.

        Raises:
            BackendError: the candidate is not exactly one token for this tokenizer.
        """
        cache = self.__dict__.setdefault("_candidate_ids", {})
        if candidate not in cache:
            ids = self.tokenizer(candidate, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise BackendError(f"{candidate!r} is {len(ids)} tokens for {self.model_id}; a candidate must be one token")
            cache[candidate] = ids[0]
        return cache[candidate]
