"""GroupRank — groupwise reranking (AQ-MedAI, 2025).

For each of ``repeats`` rounds the candidates are shuffled (seeded per query and round) and
cut into consecutive disjoint groups of ``group_size``; each group is scored jointly in one
generation (``<reason>`` then a JSON object of 0-10 scores inside ``<answer>``). A document's
score is the mean of ``int/10`` over its appearances. A group whose answer does not parse
gives each of its documents 0, as the paper does, and is counted (``parse_failed_groups``).

Optional fusion with the first stage: ``fusion=True`` means GroupRank's
``0.6 * rerank + 0.4 * first stage`` on per-query min-max normalised scores.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import SamplingParams
from rankstack.rerankers.base import Fusion, GenerateRequest, Reranker
from rankstack.rerankers.parsing import extract_answer
from rankstack.rerankers.prompts.groupwise import GROUPWISE, GROUPWISE_DIRECT, example_answer, format_documents
from rankstack.rerankers.seeds import derive_seed
from rankstack.types import Doc, Query, Ranking

log = logging.getLogger(__name__)

#: statuses of :func:`parse_group_scores`, least to most severe
STATUSES = ("ok", "repaired", "no_answer_tag", "incomplete", "failed")


_FENCE = re.compile(r"```(?:json)?\s*(.*?)(?:```|$)", re.S)
_PAIR = re.compile(r"""["']?\[*\s*(\d+)\s*\]*["']?\s*:\s*["']?(-?\d+(?:\.\d+)?)""")


def _json_candidate(block: str) -> str:
    """The last fenced ```json block, else the text from the last ``{`` that starts an object."""
    fences = [m.group(1) for m in _FENCE.finditer(block) if "{" in m.group(1) or ":" in m.group(1)]
    if fences:
        block = fences[-1]
    start = block.rfind("{")
    if start < 0:
        return block.strip()
    end = block.find("}", start)
    return block[start: end + 1] if end >= 0 else block[start:]


def _repair(s: str) -> str:
    s = s.strip()
    s = re.sub(r'"\[+\s*(\d+)\s*\]+"', r'"[\1]"', s)          # "[7]]" / "[[7]" -> "[7]"
    s = re.sub(r'(?<!")\[+\s*(\d+)\s*\]+(?!")', r'"[\1]"', s)  # unquoted [7] -> "[7]"
    s = s.replace("'", '"')
    s = re.sub(r",\s*}", "}", s)                                # trailing comma
    s = s.rstrip(",").strip()
    if not s.startswith("{"):
        s = "{" + s
    if not s.endswith("}"):
        s = s + "}"                                            # missing closing brace
    return s


def parse_group_scores(text: str, k: int) -> tuple[list[float] | None, str]:
    """Parse a GroupRank answer for a group of ``k`` documents into ``k`` scores in [0, 1].

    Steps: the ``<answer>`` block (else the whole text) -> the last fenced ```json block or last
    ``{...}`` -> ``json.loads``; if that fails, repairs (``"[7]]"`` keys, unquoted ids, single
    quotes, trailing commas, a missing ``}``) and ``json.loads`` again; if that fails too,
    ``"[i]": s`` pairs read with a regex. Keys are the 1-based ids (``"[3]"``, ``"3"``); values
    are 0-10 (clamped), returned as ``value / 10``. Out-of-range ids are ignored; ids missing
    from the answer get 0.

    Returns ``(scores, status)`` with status one of :data:`STATUSES`: ``ok`` (tags present,
    valid JSON with every id), ``repaired`` (needed a repair), ``no_answer_tag`` (read from text
    without ``<answer>``), ``incomplete`` (some ids missing, scored 0), ``failed`` (nothing
    usable: ``scores`` is ``None``). Never raises.
    """
    if not isinstance(text, str) or k <= 0:
        return None, "failed"
    answer = extract_answer(text)
    block, tagged = answer.text, answer.source != "whole_text"
    cand = _json_candidate(block)
    repaired = False
    obj = None
    try:
        obj = json.loads(cand)
    except (ValueError, RecursionError):
        try:
            obj = json.loads(_repair(cand))
            repaired = True
        except (ValueError, RecursionError):
            obj = None
    pairs: list[tuple[str, object]] = []
    if isinstance(obj, dict):
        pairs = list(obj.items())
    else:
        pairs = _PAIR.findall(cand) or _PAIR.findall(block)
        repaired = True
    scores: list[float | None] = [None] * k
    for key, value in pairs:
        m = re.search(r"\d+", str(key))
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            repaired = True
            continue
        if m is None or v != v:
            repaired = True
            continue
        if not re.fullmatch(r"\s*(\[\s*\d+\s*\]|\d+)\s*", str(key)):
            repaired = True  # "[7]]", "doc 7", ...
        i = int(m.group()) - 1
        if not 0 <= i < k:
            repaired = True
            continue
        if not 0.0 <= v <= 10.0:
            v = min(10.0, max(0.0, v))
            repaired = True
        if scores[i] is None:
            scores[i] = v / 10.0
    found = sum(s is not None for s in scores)
    if found == 0:
        return None, "failed"
    status = "ok"
    if repaired:
        status = "repaired"
    if not tagged:
        status = "no_answer_tag"
    if found < k:
        status = "incomplete"
    return [0.0 if s is None else s for s in scores], status


def make_groups(n: int, group_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle ``range(n)`` and cut it into consecutive disjoint groups (the last may be smaller)."""
    order = list(range(n))
    rng.shuffle(order)
    return [order[s: s + group_size] for s in range(0, n, group_size)]


class GroupwiseReranker(Reranker):
    """GroupRank groupwise scoring.

    Args:
        backend: any generating backend (``hf``, ``openai``, ``vllm``).
        group_size: documents per prompt, ``c`` (paper 20).
        repeats: shuffled rounds ``R`` (GroupRank's README: 6; each costs one generation per group).
        temperature, top_p: sampling (paper 0.3 / 0.8).
        max_new_tokens: reason + JSON budget (**[DEFAULT]** 512).
        seed: base seed; the shuffle of round r of query q uses ``derive_seed(seed, qid, r)`` and the
            sampling seed of round r ``derive_seed(seed, "sample", r)`` (the same for every query, so
            the groups of all queries batch together in one backend call).
        fusion: ``True`` for GroupRank's 0.6 * rerank + 0.4 * first stage (min-max per query), a
            float for another rerank weight (min-max), or a :class:`Fusion`.
        max_doc_tokens: passages are cut to this many tokens (**[DEFAULT]** 128).
        reasoning: ``False`` starts the assistant turn inside the ``<answer>`` JSON (no ``<reason>``),
            rankstack's cheap variant for small models (**[DEFAULT]** ``True``, the paper's prompt).
    """

    name = "groupwise"
    prompt_version = GROUPWISE.version

    def __init__(self, backend=None, *, group_size: int = 20, repeats: int = 6, temperature: float = 0.3,
                 top_p: float = 0.8, max_new_tokens: int = 512, seed: int = 0,
                 fusion: Fusion | float | bool | None = None, max_doc_tokens: int | None = 128,
                 reasoning: bool = True, **kw):
        if group_size < 1 or repeats < 1:
            raise RankstackError("group_size and repeats must be >= 1")
        if fusion is True:
            fusion = Fusion(0.6, "minmax")
        elif fusion is False:
            fusion = None
        elif isinstance(fusion, (int, float)):
            fusion = Fusion(float(fusion), "minmax")
        super().__init__(backend, max_doc_tokens=max_doc_tokens, fusion=fusion, **kw)
        self.group_size = group_size
        self.repeats = repeats
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.template = GROUPWISE if reasoning else GROUPWISE_DIRECT
        self.prompt_version = self.template.version

    def params(self):
        return {**super().params(), "group_size": self.group_size, "repeats": self.repeats,
                "temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "seed": self.seed}

    def sampling(self, repeat: int) -> SamplingParams:
        return SamplingParams(n=1, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, stop=("</answer>",),
                              seed=derive_seed(self.seed, "sample", repeat))

    def prompt(self, query: Query, docs: list[Doc]):
        return self.template.render(k=len(docs), query=query.text, documents=format_documents([d.text for d in docs]),
                                example=example_answer(len(docs)))

    def program(self, query: Query, docs: list[Doc], stats: Counter):
        groups: list[list[int]] = []
        requests = []
        for r in range(self.repeats):
            rng = random.Random(derive_seed(self.seed, query.qid, r))
            for g in make_groups(len(docs), self.group_size, rng):
                groups.append(g)
                requests.append(GenerateRequest(self.prompt(query, [docs[i] for i in g]), self.sampling(r)))
        results = yield requests
        total = [0.0] * len(docs)
        seen = [0] * len(docs)
        prefix = self.template.assistant_prefix.format()
        for g, completions in zip(groups, results):
            scores, status = parse_group_scores(prefix + completions[0].text, len(g))
            stats["groups"] += 1
            if scores is None:
                stats["parse_failed_groups"] += 1
                scores = [0.0] * len(g)
            elif status != "ok":
                stats[f"parse_{status}"] += 1
            for i, s in zip(g, scores):
                total[i] += s
                seen[i] += 1
        return Ranking.from_scores(query.qid, [(d.docid, total[i] / max(1, seen[i])) for i, d in enumerate(docs)])
