"""FIRST: single-token listwise reranking (Reddy et al. 2024; METHODS.md section 1).

Each window is shown with alphabetic identifiers (``[A] ...`` to ``[T] ...``) in the RankZephyr
prompt; after the chat template's generation prompt the model is about to write the first
identifier of its ranking. ONE forward pass reads the log-probabilities of every window's
identifier token at that position; passages are ranked by them (ties keep the window order).
No text is generated, so nothing needs parsing and no identifier can be missing.

**Identifier tokens depend on the tokenizer.** SmolLM2 writes ``[A]`` as '[', 'A', ']': we
append '[' and score the letter tokens 'A'..'T'. Qwen2.5 merges '[A' into one token (but not
'[O', '[Q'): we append nothing and score the merged tokens; letters the tokenizer splits need a
second request (prefix '[') whose log-prob is added, so every letter is scored by the exact
probability of the tokens the tokenizer really produces. :func:`identifier_paths` detects this
per tokenizer by encoding the rendered prompt followed by ``[X]``.

Log-probs come from ``Backend.next_token_logprobs`` (log-softmax over the whole vocabulary, so
the order equals the order of the raw logits). The ``hf`` and ``vllm`` backends give every
candidate; an OpenAI-compatible server only returns its top alternatives, and letters outside
them get ``-inf`` (counted as ``first_unscored_letters``); a backend without log-probs is refused.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt
from rankstack.rerankers.base import LogprobRequest
from rankstack.rerankers.prompts.listwise import RANKZEPHYR, clean_passage, identifier, render_listwise
from rankstack.rerankers.templates import resolve_template
from rankstack.rerankers.window import SlidingWindowReranker
from rankstack.types import Doc, Query

log = logging.getLogger(__name__)


def identifier_paths(encode: Callable[[str], list[int]], decode_one: Callable[[int], str], base_text: str,
                     labels: Sequence[str]) -> list[tuple[str, ...]] | None:
    """How the tokenizer writes ``[X`` right after the generation prompt, for each label X.

    ``encode`` maps text to token ids, ``decode_one`` one id back to its text, ``base_text`` is a
    rendered prompt with the generation prompt. Returns, per label, the token texts from the
    ``[`` up to the token that completes the label, e.g. ``("[", "A")`` for SmolLM2 or
    ``("[A",)`` for Qwen2.5; ``None`` when the prompt's own tokens change at the boundary.
    """
    base = encode(base_text)
    paths: list[tuple[str, ...]] = []
    for lab in labels:
        ids = encode(base_text + f"[{lab}]")
        if ids[: len(base)] != base:
            return None
        pieces = [decode_one(i) for i in ids[len(base):]]
        acc, path = "", []
        for p in pieces:
            path.append(p)
            acc += p
            if f"[{lab}" in acc:
                break
        else:
            return None
        paths.append(tuple(path))
    return paths


def paths_by_count(count_tokens: Callable[[str], int], labels: Sequence[str]) -> list[tuple[str, ...]]:
    """Fallback for backends without a tokenizer object: merged ``[X`` if that is one token."""
    return [(f"[{lab}",) if count_tokens(f"[{lab}") == 1 else ("[", lab) for lab in labels]


def plan_requests(paths: Sequence[tuple[str, ...]]) -> tuple[str, dict[str, list[str]]]:
    """Split label paths into the prefix every label shares (appended to the prompt once) and,
    per remaining context, the candidate tokens to read there.

    SmolLM2: prefix "[", {"": ["A", ..., "T"]} — one forward pass. Qwen2.5: prefix "",
    {"": ["[A", ..., "[", ...], "[": ["O", "Q"]} — a second pass only for the split letters.
    """
    common = len(prefix_tokens(paths))
    prefix = "".join(paths[0][:common])
    plan: dict[str, list[str]] = {}
    for p in paths:
        rest = p[common:]
        for j, tok in enumerate(rest):
            ctx = "".join(rest[:j])
            cands = plan.setdefault(ctx, [])
            if tok not in cands:
                cands.append(tok)
    return prefix, plan


class FirstReranker(SlidingWindowReranker):
    """FIRST over a sliding window (window 20, step 10, top-100 by default): one forward pass per
    window, passages ordered by the log-probs of their identifiers' first tokens. Ties between
    letter scores keep the window order **[DEFAULT]**.

    Args:
        backend: a backend with next-token log-probs (``hf``, ``vllm``, or a server returning logprobs).
        template: ``"first"``; None: chosen from the model id when the model is a known FIRST model;
            ``"none"``: off (the prompt is FIRST's either way).
        window: passages per window.
        step: how far the window slides (bottom up).
        top_k: candidates the windows cover.
        passes: sliding passes.
        shuffle: shuffle the candidates before each pass (seeded; passes are then averaged by
            reciprocal rank).
        seed: the shuffle seed.
        max_passage_tokens: passages cut to this many tokens.
        ids: ``"alpha"`` (A, B, ...) or ``"numeric"`` (only windows <= 9: single-token numbers).
        **kw: the base reranker's ``fusion``, ``cache``, ``chunk_size``, ``progress``.

    Raises:
        RankstackError: an ids/window combination that is not single-token, or a backend without log-probs.
    """

    name = "first"
    prompt_version = RANKZEPHYR.id + "+first1"

    def __init__(self, backend=None, *, template: str | None = None, window: int = 20, step: int = 10,
                 top_k: int = 100, passes: int = 1, shuffle: bool = False, seed: int = 0,
                 max_passage_tokens: int | None = 100, ids: str = "alpha", **kw):
        mt = resolve_template("first", backend, template)
        if mt is not None and ids != mt.options["ids"]:
            raise RankstackError(f"ids={ids!r} contradicts the model template {mt.name!r} (ids {mt.options['ids']!r})")
        if ids == "alpha" and window > 26:
            raise RankstackError(f"FIRST's alphabetic ids allow windows of at most 26 passages, got {window}")
        if ids == "numeric" and window > 9:
            raise RankstackError(f"numeric ids are single tokens only up to 9; window {window} needs ids='alpha'")
        if ids not in ("alpha", "numeric"):
            raise RankstackError(f"ids must be 'alpha' or 'numeric', got {ids!r}")
        if backend is not None and not getattr(backend, "supports_logprobs", True):
            raise RankstackError(
                f"FIRST needs next-token log-probabilities, which the {getattr(backend, 'name', 'given')} backend "
                "cannot provide; use the hf or vllm backend, or an OpenAI-compatible server that returns logprobs")
        super().__init__(backend, window=window, step=step, top_k=top_k, passes=passes, shuffle=shuffle, seed=seed,
                         max_passage_tokens=max_passage_tokens, **kw)
        self.model_template = mt
        self.ids = ids
        self._plans: dict[int, tuple[str, dict[str, list[str]], list[tuple[str, ...]]]] = {}

    def params(self) -> dict:
        return {**super().params(), "ids": self.ids}

    def build_prompt(self, query: Query, passages: list[str]) -> Prompt:
        return render_listwise("rankzephyr", query.text, passages, ids=self.ids)

    def output_budget(self, n: int) -> int:
        return 1

    # --- identifier tokens ------------------------------------------------------------------------
    def identifier_plan(self, n: int):
        """(prefix, {context: candidates}, per-label paths) for an ``n``-passage window."""
        if n not in self._plans:
            labels = [identifier(i, self.ids) for i in range(n)]
            paths = None
            be = self.backend
            tok = getattr(be, "tokenizer", None)
            render = getattr(be, "render", None)
            if tok is not None and render is not None:
                probe = render(self.build_prompt(Query("probe", "probe query"), [f"passage {i}" for i in range(n)]))
                paths = identifier_paths(lambda t: tok(t, add_special_tokens=False)["input_ids"],
                                         lambda i: tok.decode([i]), probe, labels)
                if paths is None:
                    log.warning("FIRST: the tokenizer re-tokenizes the end of the prompt before '[': "
                                "falling back to token counts to find the identifier tokens")
            if paths is None:
                paths = paths_by_count(be.count_tokens, labels)
            for path in paths:
                for piece in path:
                    if be.count_tokens(piece) != 1:
                        raise RankstackError(f"FIRST: identifier piece {piece!r} is not one token for "
                                             f"{be.fingerprint()}; this tokenizer cannot be scored this way")
            prefix, plan = plan_requests(paths)
            log.info("FIRST identifier tokens for %s: prefix %r, %s", be.fingerprint(), prefix,
                     {k: v for k, v in plan.items()})
            self._plans[n] = (prefix, plan, paths)
        return self._plans[n]

    # --- one window -------------------------------------------------------------------------------
    def window_requests(self, query: Query, docs: list[Doc], stats: Counter) -> list:
        prefix, plan, _ = self.identifier_plan(len(docs))
        passages = [clean_passage(d.text, self.ids) for d in docs]
        prompt = self.fit_prompt(query, passages, stats, assistant_prefix=prefix)  # measured = run: one tokenization
        return [LogprobRequest(Prompt(prompt.messages, prompt.assistant_prefix + ctx), tuple(cands))
                for ctx, cands in plan.items()]

    def window_order(self, results: list, n: int, stats: Counter) -> list[int]:
        prefix, plan, paths = self.identifier_plan(n)
        lp = {}
        for (ctx, cands), row in zip(plan.items(), results):
            for c, v in zip(cands, row):
                lp[(ctx, c)] = v
        skip = len(prefix_tokens(paths))
        scores = []
        for p in paths:
            rest = p[skip:]
            scores.append(sum(lp[("".join(rest[:j]), t)] for j, t in enumerate(rest)))
        unscored = sum(1 for s in scores if s == float("-inf"))
        if unscored:
            stats["first_unscored_letters"] += unscored
        return sorted(range(n), key=lambda i: -scores[i])  # stable: ties keep the window order


def prefix_tokens(paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The leading tokens every path shares (what :func:`plan_requests` appends to the prompt)."""
    n = min(len(p) for p in paths)
    common = 0
    while common < n - 1 and len({p[common] for p in paths}) == 1:
        common += 1
    return paths[0][:common]
