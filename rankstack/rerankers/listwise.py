"""Generative listwise reranking over a sliding window: RankGPT, RankZephyr, ReasonRank.

For each window (METHODS.md sections 0 and 4) the model reads the query and up to ``window``
numbered passages and writes a permutation ``[3] > [1] > ...``; the permutation is parsed with
the shared cleanup (:mod:`rankstack.rerankers.parsing`, never raises, every repair counted in
``run.metadata`` under ``parse_*``) and applied to the window; windows slide bottom-up.

Prompts (``prompt=``):
- ``"rankzephyr"`` — rank_llm's single user turn (the default);
- ``"rankgpt"`` — RankGPT's original multi-turn conversation (one turn per passage);
- ``"reasonrank"`` — ReasonRank's system prompt; output ``<think>..</think> <answer>..</answer>``,
  ``reasoning_tokens`` extra output budget **[DEFAULT 1024]**, the answer taken from the
  ``<answer>`` block with the documented fallbacks (text after the last ``<answer>``, then the
  whole text), each fallback counted.

Decoding is greedy; the output budget is the token count of the full permutation
``"[1] > [2] > ... > [w]"`` (plus ``reasoning_tokens`` and the tags for ReasonRank). Passages
are cut to ``max_passage_tokens`` (100: ReasonRank's TREC/BEIR setting; 512 on BRIGHT), ``[n]``
inside them is rewritten ``(n)``, and they shrink further while the prompt exceeds the
context minus the output budget.

Works with every backend that can ``generate`` (hf, openai, vllm).
"""

from __future__ import annotations

from collections import Counter

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt, SamplingParams
from rankstack.rerankers.base import GenerateRequest
from rankstack.rerankers.parsing import PermutationParser
from rankstack.rerankers.prompts.listwise import RANKGPT, TEMPLATES, clean_passage, full_permutation, render_listwise
from rankstack.rerankers.templates import resolve_template
from rankstack.rerankers.window import SlidingWindowReranker
from rankstack.types import Doc, Query


class ListwiseReranker(SlidingWindowReranker):
    """Sliding-window permutation generation (RankGPT, RankZephyr, ReasonRank).

    Args:
        backend: any generating backend.
        prompt: ``"rankzephyr"`` | ``"rankgpt"`` | ``"reasonrank"`` (default rankzephyr, or the model template's).
        template: ``"rankzephyr"`` / ``"reasonrank"``; None: chosen from the model id when the model
            is known; ``"none"``: off.
        window: passages per window.
        step: how far the window slides (bottom up).
        top_k: candidates the windows cover.
        passes: sliding passes.
        shuffle: shuffle the candidates before each pass (seeded; passes averaged by reciprocal rank).
        seed: the shuffle seed.
        max_passage_tokens: passages cut to this many tokens (shrunk further until the prompt fits).
        ids: ``"numeric"`` ([1], [2]) or ``"alpha"`` ([A], [B]).
        reasoning_tokens: ReasonRank's thinking budget.
        **kw: the base reranker's ``fusion``, ``cache``, ``chunk_size``, ``progress``.

    Raises:
        RankstackError: an unknown prompt or ids, or a prompt that contradicts the model template.
    """

    name = "listwise"

    def __init__(self, backend=None, *, prompt: str | None = None, template: str | None = None, window: int = 20,
                 step: int = 10, top_k: int = 100, passes: int = 1, shuffle: bool = False, seed: int = 0,
                 max_passage_tokens: int | None = 100, ids: str = "numeric", reasoning_tokens: int = 1024, **kw):
        mt = resolve_template("listwise", backend, template)
        if mt is not None and prompt is not None and prompt != mt.style:
            raise RankstackError(f"prompt {prompt!r} contradicts the model template {mt.name!r} (prompt "
                                 f"{mt.style!r}); pass template='none' to use another prompt with this model")
        prompt = prompt or (mt.style if mt is not None else "rankzephyr")
        if prompt not in TEMPLATES:
            raise RankstackError(f"unknown listwise prompt {prompt!r}; choose from {', '.join(TEMPLATES)}")
        if ids not in ("numeric", "alpha"):
            raise RankstackError(f"ids must be 'numeric' or 'alpha', got {ids!r}")
        if ids == "alpha" and window > 26:
            raise RankstackError(f"alphabetic ids allow windows of at most 26 passages, got {window}")
        super().__init__(backend, window=window, step=step, top_k=top_k, passes=passes, shuffle=shuffle, seed=seed,
                         max_passage_tokens=max_passage_tokens, **kw)
        self.model_template = mt
        self.prompt = prompt
        self.ids = ids
        self.reasoning = prompt == "reasonrank"
        self.reasoning_tokens = int(reasoning_tokens)
        self.prompt_version = (RANKGPT if prompt == "rankgpt" else TEMPLATES[prompt]).id
        self.parser = PermutationParser(ids=ids, reasoning=self.reasoning)
        self._budgets: dict[int, int] = {}

    def params(self) -> dict:
        p = {**super().params(), "prompt": self.prompt, "ids": self.ids}
        if self.reasoning:
            p["reasoning_tokens"] = self.reasoning_tokens
        return p

    # --- prompt and budget ------------------------------------------------------------------
    def build_prompt(self, query: Query, passages: list[str]) -> Prompt:
        return render_listwise(self.prompt, query.text, passages, ids=self.ids)

    def permutation_tokens(self, n: int) -> int:
        """Tokens of ``"[1] > [2] > ... > [n]"`` for this backend's tokenizer."""
        if n not in self._budgets:
            text = full_permutation(n, self.ids)
            self._budgets[n] = self.backend.count_tokens(text) if self.backend is not None else len(text)
        return self._budgets[n]

    def output_budget(self, n: int) -> int:
        budget = self.permutation_tokens(n)
        if self.reasoning:
            tags = "<think></think> <answer></answer>"
            budget += self.reasoning_tokens + (self.backend.count_tokens(tags) if self.backend else len(tags))
        return budget

    def sampling_params(self, n: int) -> SamplingParams:
        stop = ("</answer>",) if self.reasoning else ()
        return SamplingParams(temperature=0.0, max_new_tokens=self.output_budget(n), stop=stop)

    # --- one window ----------------------------------------------------------------------------
    def window_requests(self, query: Query, docs: list[Doc], stats: Counter) -> list:
        passages = [clean_passage(d.text, self.ids) for d in docs]
        prompt = self.fit_prompt(query, passages, stats)
        return [GenerateRequest(prompt, self.sampling_params(len(docs)))]

    def window_order(self, results: list, n: int, stats: Counter) -> list[int]:
        comp = results[0][0]
        if comp.finish_reason == "length":
            stats["output_truncated"] += 1
        return self.parser(comp.text, n, stats, stopped_at_answer_end=comp.finish_reason == "stop")
