"""Retro* — rubric scoring with score integration (Lan et al. 2025).

Each (query, document) pair gets ``K`` sampled reasoning trajectories that end in
``<score>N</score>`` (0-100); the document's score integrates them: the mean (default) or a
likelihood-weighted mean. Multi-pass budgets spend samples where they matter:
``"100@1,30@16"`` scores the top-100 with one trajectory, then re-scores the new top-30 with
16 and keeps the order below 30.

The cache holds the raw trajectories (keyed by prompt, sample count and sampling seed), so
the integration method does not change the cache key, and ``pool`` lets runs with different
``K`` share one set of samples (``K`` = the first K of the pool): a test-time scaling curve
costs one run of the largest K.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Completion, SamplingParams
from rankstack.rerankers.base import GenerateRequest, Reranker
from rankstack.rerankers.seeds import derive_seed
from rankstack.rerankers.prompts.rubric import DEFAULT_RELEVANCE, RUBRIC, RUBRIC_DIRECT
from rankstack.types import Doc, Query, Ranking

log = logging.getLogger(__name__)

_SCORE = re.compile(r"<score>\s*\[?\s*(\d+(?:\.\d+)?)\s*\]?\s*(?:</score>|$)", re.S)
_LOOSE = re.compile(r"(?:<score>|score\s*(?:is|of|=|:)?)\s*\[?\s*(\d+(?:\.\d+)?)", re.I)


def parse_rubric_score(text: str) -> tuple[float | None, str]:
    """The 0-100 score of a Retro* trajectory.

    ``ok``: ``<score> N </score>`` (the closing tag may be missing: it is the stop string, which
    backends cut off); ``repaired``: a looser ``score: N`` / ``<score> N ...`` read, or a value
    clamped to [0, 100]; ``failed`` (``None``): no score (integrated as 0 by default). The last
    score in the text wins. Never raises.
    """
    if not isinstance(text, str):
        return None, "failed"
    status = "ok"
    found = _SCORE.findall(text.strip())
    if not found:
        found = _LOOSE.findall(text)
        status = "repaired"
    if not found:
        return None, "failed"
    v = float(found[-1])
    if v > 100.0:
        v, status = 100.0, "repaired"
    return v, status


def integrate_scores(scores: Sequence[float | None], logprobs: Sequence[float] | None = None,
                     method: str = "mean", failed: str = "zero") -> float:
    """Integrate K trajectory scores.

    ``method="mean"``: uniform weights (Retro*'s default). ``"likelihood"``: weights
    proportional to ``exp(mean token log-prob)`` of each trajectory (the geometric-mean token
    probability; **[DEFAULT]** length-normalised so that long trajectories are not crushed),
    ``logprobs`` giving each trajectory's mean token log-prob. ``failed="zero"`` counts an
    unparsed trajectory as 0 (the paper's rule); ``"skip"`` leaves it out (all failed -> 0).
    """
    if method not in ("mean", "likelihood"):
        raise RankstackError(f"unknown integration {method!r}; 'mean' or 'likelihood'")
    if failed not in ("zero", "skip"):
        raise RankstackError(f"unknown failed-trajectory rule {failed!r}; 'zero' or 'skip'")
    keep = [i for i, s in enumerate(scores) if s is not None or failed == "zero"]
    if not keep:
        return 0.0
    vals = [0.0 if scores[i] is None else float(scores[i]) for i in keep]
    if method == "mean" or logprobs is None:
        return sum(vals) / len(vals)
    lps = [float(logprobs[i]) for i in keep]
    top = max(lps)
    w = [math.exp(x - top) for x in lps]
    return sum(wi * v for wi, v in zip(w, vals)) / sum(w)


def parse_budget(budget: str | Sequence[tuple[int | None, int]]) -> list[tuple[int | None, int]]:
    """``"100@1,30@16"`` -> ``[(100, 1), (30, 16)]``; ``"all@4"`` -> ``[(None, 4)]`` (every candidate).

    Depths must shrink from pass to pass and sample counts be >= 1.
    """
    if isinstance(budget, str):
        passes: list[tuple[int | None, int]] = []
        for part in budget.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+|all)@(\d+)", part)
            if not m:
                raise RankstackError(f"bad budget pass {part!r} in {budget!r}; write DEPTH@K, e.g. '100@1,30@16'")
            passes.append((None if m.group(1) == "all" else int(m.group(1)), int(m.group(2))))
    else:
        passes = [(d, int(k)) for d, k in budget]
    if not passes:
        raise RankstackError("empty budget")
    prev = math.inf
    for d, k in passes:
        depth = math.inf if d is None else d
        if k < 1 or depth < 1:
            raise RankstackError(f"budget {budget!r}: depth and K must be >= 1")
        if depth > prev:
            raise RankstackError(f"budget {budget!r}: each pass must re-score no more documents than the one before")
        prev = depth
    return passes


def _mean_logprob(c: Completion) -> float:
    return c.logprob / max(1, c.num_tokens)


class RubricReranker(Reranker):
    """Retro* rubric scoring with score integration.

    Args:
        backend: any generating backend (``hf``, ``openai``, ``vllm``).
        samples: trajectories per pair, ``K`` (single pass over all candidates), unless ``budget``
            (**[DEFAULT]** 1; the paper's best is 16, or the budget ``"100@1,30@16"``).
        budget: multi-pass budget, ``"100@1,30@16"`` (overrides ``samples``).
        pool: sample this many trajectories per request and integrate the first ``K`` (default
            ``K``); runs with the same pool share the cache, so a K curve costs one run.
        integration: ``"mean"`` (default) or ``"likelihood"``; failed: ``"zero"`` (default) or ``"skip"``.
        temperature, top_k, top_p: sampling (paper 0.6 / 40).
        max_new_tokens: reasoning budget (**[DEFAULT]** 512).
        seed: the sampling seed of a request with ``n`` samples is ``derive_seed(seed, "rubric", n)``,
            shared by all queries and documents so they batch together.
        relevance_definition, query_type, doc_type: prompt slots.
        max_doc_tokens: passages cut to this many tokens (**[DEFAULT]** 256).
        reasoning: ``False`` starts the assistant turn with ``<score>`` so each trajectory is a sampled
            score without analysis, rankstack's cheap variant (**[DEFAULT]** ``True``, the paper's prompt).

    Ranking scores: a document scored in pass p (0-based) and no later gets ``101 * p + score``,
    so re-scored documents stay above the others; documents no pass reached get ``-1 - rank``.
    """

    name = "rubric"
    prompt_version = RUBRIC.version

    def __init__(self, backend=None, *, samples: int = 1, budget: str | None = None, pool: int | None = None,
                 integration: str = "mean", failed: str = "zero", temperature: float = 0.6, top_k: int = 40,
                 top_p: float = 1.0, max_new_tokens: int = 512, seed: int = 0,
                 relevance_definition: str = DEFAULT_RELEVANCE, query_type: str = "web search query",
                 doc_type: str = "web passage", max_doc_tokens: int | None = 256, reasoning: bool = True, **kw):
        super().__init__(backend, max_doc_tokens=max_doc_tokens, **kw)
        self.passes = parse_budget(budget if budget is not None else f"all@{samples}")
        self.budget = budget
        if pool is not None and pool < max(k for _, k in self.passes):
            raise RankstackError(f"pool={pool} is smaller than the largest K of the budget")
        self.pool = pool
        integrate_scores([], method=integration, failed=failed)  # validates both options
        self.integration, self.failed = integration, failed
        if temperature <= 0 and (pool or max(k for _, k in self.passes)) > 1:
            raise RankstackError("K > 1 trajectories need temperature > 0")
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.max_new_tokens, self.seed = max_new_tokens, seed
        self.template = RUBRIC if reasoning else RUBRIC_DIRECT
        self.prompt_version = self.template.version
        self.slots = {"relevance_definition": relevance_definition, "query_type": query_type, "doc_type": doc_type}

    def params(self):
        # only what changes the sampled trajectories: K, the budget and the integration method
        # are applied after the cache, so runs that differ only there share it
        return {**super().params(), "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed, **self.slots}

    def sampling(self, n: int) -> SamplingParams:
        return SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens, stop=("</score>",),
                              seed=derive_seed(self.seed, "rubric", n))

    def prompt(self, query: Query, doc: Doc):
        return self.template.render(query=query.text, doc=doc.text, **self.slots)

    def score(self, completions: Sequence[Completion], k: int, stats: Counter) -> float:
        parsed = []
        for c in completions[:k]:
            s, status = parse_rubric_score(self.template.assistant_prefix + c.text)
            stats["trajectories"] += 1
            if status != "ok":
                stats[f"parse_{status}"] += 1
            parsed.append(s)
        return integrate_scores(parsed, [_mean_logprob(c) for c in completions[:k]], self.integration, self.failed)

    def program(self, query: Query, docs: list[Doc], stats: Counter):
        order = list(range(len(docs)))
        final: dict[int, float] = {}
        for p, (depth, k) in enumerate(self.passes):
            head = order[: len(order) if depth is None else depth]
            n = self.pool or k
            results = yield [GenerateRequest(self.prompt(query, docs[i]), self.sampling(n)) for i in head]
            scores = {i: self.score(cs, k, stats) for i, cs in zip(head, results)}
            stats[f"pass{p + 1}_pairs"] += len(head)
            head = sorted(head, key=lambda i: -scores[i])  # stable: ties keep the previous order
            order = head + order[len(head):]
            final.update({i: 101.0 * p + scores[i] for i in head})
        rest = [i for i in order if i not in final]
        return Ranking.from_scores(query.qid, [(docs[i].docid, final[i]) for i in order if i in final]
                                   + [(docs[i].docid, -1.0 - r) for r, i in enumerate(rest)])
