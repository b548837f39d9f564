"""Listwise prompts: RankZephyr (single turn), RankGPT (multi-turn), ReasonRank, FIRST (letters).

Texts follow METHODS.md sections 0, 1 and 4. ``render_listwise`` builds the :class:`Prompt`
for a window; training example builders call the same function, so the two never drift.
Changing any text below means bumping that template's ``version``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from rankstack.rerankers.backends.base import Prompt
from rankstack.rerankers.prompts import PromptTemplate

RANKLLM_SYSTEM = ("You are RankLLM, an intelligent assistant that can rank passages based on their relevancy "
                  "to the query.")

REASONRANK_SYSTEM = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevance to the query. "
    "Given a query and a passage list, you first thinks about the reasoning process in the mind and then "
    "provides the answer (i.e., the reranked passage list). The reasoning process and answer are enclosed "
    "within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here "
    "</think> <answer> answer here </answer>.")

_HEAD = ("I will provide you with {num} passages, each indicated by a {id_kind} identifier []. Rank the passages "
         "based on their relevance to the search query: {query}.\n\n{passages}Search Query: {query}.\n"
         "Rank the {num} passages above based on their relevance to the search query. ")

#: RankZephyr / rank_llm: one user turn. FIRST renders it with letters and the prefix "[".
RANKZEPHYR = PromptTemplate(
    name="listwise.rankzephyr", version="1", system=RANKLLM_SYSTEM,
    user=_HEAD + ("All the passages should be included and listed using identifiers, in descending order of "
                  "relevance. The output format should be [] > [], e.g., {example}, Only respond with the "
                  "ranking results, do not say any word or explain."))

#: ReasonRank: reasoning system prompt, answer format sentence instead of "Only respond ...".
REASONRANK = PromptTemplate(
    name="listwise.reasonrank", version="1", system=REASONRANK_SYSTEM,
    user=_HEAD + ("All the passages should be included and listed using identifiers, in descending order of "
                  "relevance. The format of the answer should be [] > [], e.g., {example}."))


@dataclass(frozen=True)
class MultiTurnTemplate:
    """RankGPT's original conversation: one user/assistant turn per passage."""

    name: str
    version: str
    system: str
    intro: str
    intro_reply: str
    passage: str
    passage_reply: str
    final: str

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


RANKGPT = MultiTurnTemplate(
    name="listwise.rankgpt", version="1",
    system="You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query.",
    intro=("I will provide you with {num} passages, each indicated by number identifier []. \n"
           "Rank the passages based on their relevance to query: {query}."),
    intro_reply="Okay, please provide the passages.",
    passage="[{id}] {text}",
    passage_reply="Received passage [{id}].",
    final=("Search Query: {query}. \nRank the {num} passages above based on their relevance to the search query. "
           "The passages should be listed in descending order using identifiers. The most relevant passages "
           "should be listed first. The output format should be [] > [], e.g., {example}. Only respond with the "
           "ranking results, do not say any word or explain."),
)

TEMPLATES = {"rankzephyr": RANKZEPHYR, "rankgpt": RANKGPT, "reasonrank": REASONRANK}


def identifier(i: int, ids: str = "numeric") -> str:
    """The label of window position ``i`` (0-based): ``1``.. or ``A``..."""
    if ids == "alpha":
        if i >= 26:
            raise ValueError("alphabetic identifiers allow windows of at most 26 passages")
        return string.ascii_uppercase[i]
    return str(i + 1)


def full_permutation(n: int, ids: str = "numeric") -> str:
    """``"[1] > [2] > ... > [n]"``: its token count is the output budget."""
    return " > ".join(f"[{identifier(i, ids)}]" for i in range(n))


def clean_passage(text: str, ids: str = "numeric") -> str:
    """Rewrite identifiers inside passage text (``[3]`` -> ``(3)``) so they cannot be mistaken for labels."""
    text = re.sub(r"\[(\d+)\]", r"(\1)", text)
    if ids == "alpha":
        text = re.sub(r"\[([A-Za-z])\]", r"(\1)", text)
    return " ".join(text.split())


def render_listwise(style: str, query: str, passages: Sequence[str], ids: str = "numeric",
                    assistant_prefix: str = "") -> Prompt:
    """The prompt for one window (``passages`` already cleaned and cut)."""
    num = len(passages)
    example = f"[{identifier(1, ids)}] > [{identifier(0, ids)}]" if num >= 2 else f"[{identifier(0, ids)}]"
    id_kind = "alphabetical" if ids == "alpha" else "numerical"
    if style == "rankgpt":
        t = RANKGPT
        hist: list[tuple[str, str]] = [("user", t.intro.format(num=num, query=query)),
                                       ("assistant", t.intro_reply)]
        for i, p in enumerate(passages):
            hist += [("user", t.passage.format(id=identifier(i, ids), text=p)),
                     ("assistant", t.passage_reply.format(id=identifier(i, ids)))]
        return Prompt.chat(t.final.format(query=query, num=num, example=example), system=t.system,
                           assistant_prefix=assistant_prefix, history=hist)
    try:
        tmpl = TEMPLATES[style]
    except KeyError:
        raise ValueError(f"unknown listwise prompt {style!r}; known: {', '.join(TEMPLATES)}") from None
    block = "".join(f"[{identifier(i, ids)}] {p}\n" for i, p in enumerate(passages))
    p = tmpl.render(num=num, query=query, passages=block, example=example, id_kind=id_kind)
    return Prompt(p.messages, assistant_prefix) if assistant_prefix else p
