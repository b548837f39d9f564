"""Pointwise rerankers: every (query, passage) pair scored on its own (METHODS.md 2 and 7).

``PointwiseReranker(backend, method=...)``, registry name ``"pointwise"``:

- ``"yesno"``: log p(yes) - log p(no) after a yes/no relevance question; each side is the
  logsumexp over its surface forms (``yes``/``Yes``/`` yes``/`` Yes``, same for no).
- ``"score10"``: ERank's fast mode, the expected value sum_k k * p(k) of the 0-10 score read
  from one forward pass after ``<think> </think><answer>``. Digits 0-9 are single tokens but
  ``10`` is two (``1``, ``0``), so p("1") mixes "1" with the start of "10". With
  ``ten="two_token"`` (default) a second one-token request reads p("0" | ... "1") and splits
  p("1") into p(1) = p("1")(1 - p("0"|"1")) and p(10) = p("1") p("0"|"1"); it is only made where
  p("1") >= ``ten_threshold`` (default 1e-3, so the expected value is off by < 0.01 elsewhere).
  ``ten="approx"`` skips it: all of p("1") counts as score 1 and 10 is unreachable.
- ``"erank"``: ERank's reasoning mode: generate ``<think>...</think><answer>n</answer>``,
  score = n x Pr(n), Pr the probability of the generated score token(s); generation stops at
  ``</answer>``. Greedy by default
  **[DEFAULT]** (``temperature``/``max_new_tokens`` options); malformed output scores 0
  **[DEFAULT]** and is counted in ``stats["parse_fallback"]``; a score outside 0-10 is clamped
  (``parse_clamped``); a score whose tokens cannot be found gets Pr = 1 (``parse_no_logprob``).
- ``"prorank"``: logit("1") - logit("0") after ProRank's binary judgement prompt.
- ``"qlm"``: query likelihood (UPR; METHODS.md section 11): the mean log-probability of the
  query's tokens, teacher-forced after ``Passage: {d}\nPlease write a question based on this
  passage.`` (the user turn of the chat template; the query is the assistant's answer). One
  forward pass per pair, nothing to parse. Needs a backend with ``continuation_logprobs`` (hf,
  vllm; an OpenAI-compatible server only if it echoes prompt log-probs). The passage comes
  before the query, so the prefix the hf backend shares within a query is only the chat
  template's head (system prompt + ``Passage:``); the ``qlm_dl19`` benchmark measures it.

Prompts are the versioned templates of :mod:`rankstack.rerankers.prompts.pointwise`;
``instruction=`` and ``system=`` replace their defaults (both part of the cache fingerprint); a
query's own instruction (``Query.instruction``, ``rerank(..., instruction=)``, the server's
``instruction`` field) fills the ``{instruction}`` slot for that query alone.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace

import numpy as np

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Completion, Prompt, SamplingParams
from rankstack.rerankers.base import GenerateRequest, LikelihoodRequest, LogprobRequest, Reranker
from rankstack.rerankers.prompts import PromptTemplate
from rankstack.rerankers.prompts.pointwise import TEMPLATES
from rankstack.rerankers.templates import resolve_template
from rankstack.types import Doc, Query, Ranking

YES_FORMS = ("yes", "Yes", " yes", " Yes")
NO_FORMS = ("no", "No", " no", " No")
DIGITS = tuple(str(k) for k in range(10))
METHODS = ("yesno", "score10", "erank", "prorank", "qlm")

_ANSWER = re.compile(r"<answer>\s*(-?\d+)\s*(?:</answer>|$)", re.S)
_ANY_INT = re.compile(r"-?\d+")


def _lse(xs) -> float:
    xs = np.asarray(xs, dtype=np.float64)
    if not np.isfinite(xs).any():
        return -math.inf
    return float(np.logaddexp.reduce(xs))


def _piece_text(piece: str) -> str:
    """Byte-level BPE pieces spell spaces/newlines as 'Ġ'/'Ċ'; text tokens pass unchanged."""
    return piece.replace("Ġ", " ").replace("Ċ", "\n")


def erank_score(c: Completion) -> tuple[float, str]:
    """ERank score of one completion: (n x Pr(n), status). Status: ``ok``, ``fallback``
    (malformed: score 0), ``clamped`` (outside 0-10), ``no_logprob`` (Pr taken as 1)."""
    m = None
    for m in _ANSWER.finditer(c.text):  # the last <answer> block
        pass
    if m is None:
        return 0.0, "fallback"
    n = int(m.group(1))
    status = "ok"
    if not 0 <= n <= 10:
        n, status = min(10, max(0, n)), "clamped"
    # locate the answer's digit tokens: join the pieces and map the match back to tokens
    joined, spans, pos = "", [], 0
    for p in c.tokens:
        t = _piece_text(p)
        spans.append((pos, pos + len(t)))
        joined += t
        pos += len(t)
    mm = None
    for mm in _ANSWER.finditer(joined):
        pass
    if mm is None or len(c.token_logprobs) != len(c.tokens):
        return float(n), "no_logprob" if status == "ok" else status
    a, b = mm.span(1)
    lp = sum(lpv for (s, e), lpv in zip(spans, c.token_logprobs) if s < b and e > a)
    return n * math.exp(lp), status


class PointwiseReranker(Reranker):
    """One prompt per (query, passage); see the module docstring for the five methods.

    Args:
        backend: the backend (``hf``, ``vllm``, ``openai``).
        method: ``yesno`` | ``score10`` | ``erank`` | ``prorank`` | ``qlm`` (default ``yesno``, or
            the model template's).
        instruction: yesno's question (default rankstack's).
        system: yesno's judge system prompt (``""``: the model's default).
        template: a model template's name (``"qwen3-reranker"``, ``"erank"``; None: chosen from the
            model id when the model is known; ``"none"``: rankstack's prompts), or a
            :class:`PromptTemplate` replacing the method's.
        yes_forms: the tokens summed as "yes" (yesno).
        no_forms: the tokens summed as "no" (yesno).
        ten: score10's handling of "10": ``two_token`` (exact) or ``approx``.
        ten_threshold: score10: below this probability of "1" the "10" continuation is not scored.
        temperature: erank's sampling temperature (0: greedy).
        max_new_tokens: erank's generation budget.
        n: erank's samples per pair.
        seed: erank's sampling seed.
        **engine: the base :class:`~rankstack.rerankers.base.Reranker`'s ``max_doc_tokens``,
            ``fusion``, ``cache``, ``chunk_size``, ``progress``, and ``chunk_tokens``/``chunk_stride``/
            ``aggregate`` for long documents (:mod:`rankstack.rerankers.chunking`).

    Raises:
        RankstackError: an unknown method, ``ten`` value, or a template without the method.
    """

    name = "pointwise"
    prompt_version = "1"
    chunk_mode = "aggregate"  # long documents: every chunk scored, scores aggregated (max = MaxP)

    def __init__(self, backend=None, method: str | None = None, *, instruction: str | None = None,
                 system: str | None = None, template: PromptTemplate | str | None = None,
                 yes_forms: tuple[str, ...] | None = None, no_forms: tuple[str, ...] | None = None,
                 ten: str = "two_token", ten_threshold: float = 1e-3, temperature: float = 0.0,
                 max_new_tokens: int = 512, n: int = 1, seed: int | None = 0, **engine):
        super().__init__(backend, instruction=instruction, **engine)
        mt = None if isinstance(template, PromptTemplate) else resolve_template("pointwise", backend, template)
        method = method or (mt.options["method"] if mt else "yesno")
        if method not in METHODS:
            raise RankstackError(f"pointwise: unknown method {method!r}; one of {', '.join(METHODS)}")
        if ten not in ("two_token", "approx"):
            raise RankstackError(f"pointwise: ten must be 'two_token' or 'approx', got {ten!r}")
        if mt is not None and method not in mt.prompts:
            raise RankstackError(f"pointwise: template {mt.name!r} has no prompt for method {method!r} "
                                 f"(its methods: {', '.join(mt.prompts)})")
        opts = mt.options if mt is not None else {}
        yes_forms = opts.get("yes_forms", YES_FORMS) if yes_forms is None else yes_forms
        no_forms = opts.get("no_forms", NO_FORMS) if no_forms is None else no_forms
        if not yes_forms or not no_forms:
            raise RankstackError("pointwise: yes_forms and no_forms must not be empty")
        self.method = method
        self.model_template = mt
        if mt is not None:
            self.template = mt.prompts[method]
        else:
            self.template = template if isinstance(template, PromptTemplate) else TEMPLATES[method]
        self.slots: dict[str, str] = {}
        if system is not None:
            self.slots["system"] = system
        self.yes_forms, self.no_forms = tuple(yes_forms), tuple(no_forms)
        self.ten, self.ten_threshold = ten, float(ten_threshold)
        self.sampling = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                       stop=("</answer>",), seed=seed if temperature > 0 else None)
        self.name = f"pointwise-{method}"

    def params(self):
        p = {**super().params(), "method": self.method, "template": self.template.id,
             "template_text": [self.template.system, self.template.user, self.template.assistant_prefix],
             "slots": self.slots}
        if self.method == "yesno":
            p["forms"] = [self.yes_forms, self.no_forms]
        elif self.method == "score10":
            p["ten"] = [self.ten, self.ten_threshold if self.ten == "two_token" else None]
        elif self.method == "erank":
            p["sampling"] = self.sampling
        return p

    def instruct(self, query: Query) -> Query:
        """A template with an ``{instruction}`` slot takes the query's instruction there (:meth:`prompt`);
        one without gets it joined into the query text (the base rule)."""
        return query if "instruction" in self.template.slots else super().instruct(query)

    def prompt(self, query: Query, doc: Doc) -> Prompt:
        slots = self.slots
        instruction = query.instruction or self.instruction
        if instruction and "instruction" in self.template.slots:
            slots = {**slots, "instruction": instruction}
        return self.template.render(query=query.text, document=doc.text, **slots)

    # --- the per-query program -------------------------------------------------------------------
    def program(self, query: Query, docs: list[Doc], stats: Counter):
        prompts = [self.prompt(query, d) for d in docs]
        if self.method == "yesno":
            scores = yield from self._yesno(prompts, stats)
        elif self.method == "prorank":
            rows = yield [LogprobRequest(p, ("1", "0")) for p in prompts]
            scores = [self._diff(r[0], r[1], stats) for r in rows]
        elif self.method == "score10":
            scores = yield from self._score10(prompts, stats)
        elif self.method == "qlm":
            rows = yield [LikelihoodRequest(p, query.text) for p in prompts]
            scores = [self._mean_logprob(r, stats) for r in rows]
        else:
            scores = yield from self._erank(prompts, stats)
        return Ranking.from_scores(query.qid, [(d.docid, s) for d, s in zip(docs, scores)])

    @staticmethod
    def _diff(a: float, b: float, stats: Counter) -> float:
        if not (math.isfinite(a) or math.isfinite(b)):
            stats["parse_no_candidates"] += 1  # neither answer among the backend's top log-probs
            return 0.0
        return max(-1e4, min(1e4, a - b))  # one side -inf (top-k backends): a large finite margin

    @staticmethod
    def _mean_logprob(row, stats: Counter) -> float:
        if not row:  # an empty query has no tokens to score
            stats["qlm_empty_query"] += 1
            return 0.0
        return float(np.mean(row))

    def _yesno(self, prompts, stats):
        cands = self.yes_forms + self.no_forms
        rows = yield [LogprobRequest(p, cands) for p in prompts]
        k = len(self.yes_forms)
        return [self._diff(_lse(r[:k]), _lse(r[k:]), stats) for r in rows]

    def _score10(self, prompts, stats):
        rows = yield [LogprobRequest(p, DIGITS) for p in prompts]
        probs = [np.exp(np.asarray(r, dtype=np.float64)) for r in rows]
        ten_q = {}
        if self.ten == "two_token":
            need = [i for i, p in enumerate(probs) if p.sum() > 0 and p[1] / p.sum() >= self.ten_threshold]
            if need:
                follow = yield [LogprobRequest(replace(prompts[i], assistant_prefix=prompts[i].assistant_prefix + "1"),
                                               ("0",)) for i in need]
                ten_q = {i: float(np.exp(r[0])) for i, r in zip(need, follow)}
                stats["score10_two_token"] += len(need)
        scores = []
        for i, p in enumerate(probs):
            total = p.sum()
            if total <= 0:
                stats["parse_no_candidates"] += 1
                scores.append(0.0)
                continue
            q = ten_q.get(i, 0.0)
            ev = float(np.dot(np.arange(10), p)) + p[1] * q * 9.0  # mass p1*q moves from 1 to 10
            scores.append(ev / total)
        return scores

    def _erank(self, prompts, stats):
        outs = yield [GenerateRequest(p, self.sampling) for p in prompts]
        scores = []
        for comps in outs:
            vals = []
            for c in comps:
                s, status = erank_score(c)
                if status != "ok":
                    stats[f"parse_{status}"] += 1
                vals.append(s)
            scores.append(float(np.mean(vals)) if vals else 0.0)
        return scores
