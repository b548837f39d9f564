"""Permutation parsing for listwise outputs. It never raises on model output.

The cleanup everyone uses (METHODS.md section 0), for a window of ``n`` passages:

1. keep the identifiers only (numbers: every non-digit becomes a space; letters: ``[A]``..``[T]``
   map A -> 1);
2. to 0-based ints, drop duplicates (keep the first);
3. drop out-of-range ids;
4. append the missing ids in their current order;
5. an output with no ids at all leaves the window unchanged.

Every repair is reported in :class:`ParsedPermutation` and counted by :func:`count_parse`
under keys starting with ``parse_`` (outputs needing that repair; they end up in ``Run.metadata``).

ReasonRank outputs ``<think>..</think> <answer>[3] > [1] > ..</answer>``: :func:`extract_answer`
takes the ``<answer>`` block, falling back to the text after the last ``<answer>``, then to the
whole text.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field

LETTERS = string.ascii_uppercase

_BRACKET_LETTER = re.compile(r"\[\s*([A-Za-z])\s*\]")
_BARE_LETTER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


@dataclass(frozen=True)
class ParsedPermutation:
    """``order``: 0-based window positions, best first — always a permutation of ``range(n)``."""

    order: list[int]
    found: int = 0  # identifiers read from the text
    duplicates: int = 0
    out_of_range: int = 0
    missing: int = 0  # ids appended in current order
    no_ids: bool = False

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.out_of_range or self.missing or self.no_ids)


def ids_in(text: str, ids: str = "numeric") -> list[int]:
    """The 1-based identifiers in ``text``, in order, repeats kept."""
    if ids == "numeric":
        return [int(x) for x in re.sub(r"\D", " ", text).split()]
    if ids == "alpha":
        found = _BRACKET_LETTER.findall(text)
        if not found:  # "B > A" without brackets
            found = _BARE_LETTER.findall(text)
        return [ord(c.upper()) - ord("A") + 1 for c in found]
    raise ValueError(f"ids must be 'numeric' or 'alpha', got {ids!r}")


def parse_permutation(text: str, n: int, ids: str = "numeric") -> ParsedPermutation:
    """Turn a model's ranking text into a permutation of the ``n`` window positions."""
    raw = ids_in(text or "", ids)
    seen: set[int] = set()
    order: list[int] = []
    dup = oor = 0
    for x in raw:
        i = x - 1
        if i in seen:
            dup += 1
            continue
        if not 0 <= i < n:
            oor += 1
            seen.add(i)
            continue
        seen.add(i)
        order.append(i)
    missing = [i for i in range(n) if i not in seen]
    return ParsedPermutation(order + missing, found=len(raw), duplicates=dup, out_of_range=oor,
                             missing=len(missing), no_ids=not order)


def count_parse(stats: Counter, parsed: ParsedPermutation) -> None:
    """Count one parsed output. ``parse_*`` keys count the OUTPUTS (windows) that needed each repair
    (so their sum is the number of repairs the CLI reports); ``outputs_parsed`` / ``outputs_repaired``
    summarise, ``ids_dropped`` / ``ids_appended`` count identifiers."""
    stats["outputs_parsed"] += 1
    if parsed.ok:
        return
    stats["outputs_repaired"] += 1
    if parsed.no_ids:
        stats["parse_no_ids"] += 1  # window left unchanged
    if parsed.duplicates:
        stats["parse_duplicates"] += 1
    if parsed.out_of_range:
        stats["parse_out_of_range"] += 1
    if parsed.missing and not parsed.no_ids:
        stats["parse_missing"] += 1
    stats["ids_dropped"] += parsed.duplicates + parsed.out_of_range
    stats["ids_appended"] += parsed.missing


@dataclass(frozen=True)
class Answer:
    text: str
    source: str  # "answer_tag" | "after_last_answer_tag" | "whole_text"


def extract_answer(text: str) -> Answer:
    """ReasonRank's answer: the ``<answer>`` block, else text after the last ``<answer>``, else all."""
    text = text or ""
    blocks = _ANSWER.findall(text)
    if blocks:
        return Answer(blocks[-1], "answer_tag")
    j = text.rfind("<answer>")
    if j >= 0:
        return Answer(text[j + len("<answer>"):], "after_last_answer_tag")
    return Answer(text, "whole_text")


@dataclass
class PermutationParser:
    """Parses and counts in one call: ``parser(text, n, stats) -> order``."""

    ids: str = "numeric"
    reasoning: bool = False
    extra: dict = field(default_factory=dict)

    def __call__(self, text: str, n: int, stats: Counter, stopped_at_answer_end: bool = False) -> list[int]:
        if self.reasoning:
            ans = extract_answer(text)
            if ans.source == "whole_text":
                stats["parse_no_answer_tag"] += 1
            elif ans.source == "after_last_answer_tag" and not stopped_at_answer_end:
                stats["parse_unclosed_answer"] += 1
            if "</think>" not in (text or ""):
                stats["parse_no_think_close"] += 1
            text = ans.text
        parsed = parse_permutation(text, n, self.ids)
        count_parse(stats, parsed)
        return parsed.order
