"""Numbers the docs quote that look measured, checked against the files that print them.

A number "looks measured" when it is one of (see :data:`PATTERNS`):

- a decimal with two or more fractional digits (``0.5058``, ``18.95``): scores, rates, seconds;
- a ratio ``N.Nx`` (``1.10x``, ``13.3x``);
- a percentage (``92%``, ``2.2%``);
- a count with thousands separators (``1,154``, ``680,402``; compared without the commas);
- a duration ``N s`` / ``N min`` / ``N ms`` (``92 s``, ``25.9 min``), or ``N min M s``, which
  must appear as such or as its seconds (``8 min 42 s``: ``522 s``; a printed ``442.42s`` gives 442).

Each must appear, as a number token, in some *source*: a file under ``benchmarks/results/`` or
the reproduction conditions YAML. Numbers marked as approximate (``~7 docs/s``, ``about 0.3 s``),
in scientific notation (``3e-5``: tolerances), or part of a version (``2.13.0``) are not checked;
:data:`ALLOWED` names the few exact non-measurements the docs quote, each with its reason.
``tests/test_quoted_numbers.py`` runs :func:`check` over README.md and docs/*.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_LEFT = r"(?<![\w.,/@=-])"  # not inside a word, version, path, option value or a longer number
_RIGHT = r"(?![\w]|[.,]\d)"  # (``0.58`` of ``0.5823`` does not match: the whole token is read)
#: (kind, regex with one group: the number); the first kind that matches at a position counts
PATTERNS = (
    ("ratio", re.compile(_LEFT + r"(\d+\.\d+)x(?![\w])")),
    ("percent", re.compile(_LEFT + r"(\d+(?:\.\d+)?)%")),
    ("duration", re.compile(_LEFT + r"(\d+ min \d+ s)(?![\w/])")),
    ("decimal", re.compile(_LEFT + r"(\d+\.\d{2,})" + r"(?![\d]|\.\d|e-?\d)")),
    ("count", re.compile(_LEFT + r"(\d{1,3}(?:,\d{3})+)" + _RIGHT)),
    ("duration", re.compile(_LEFT + r"(" + _NUM + r") ?(?:s|min|ms)(?![\w/])")),
)
_APPROX = re.compile(r"(?:~|\babout |\baround |\bnearly |\broughly )$")
#: (file name or ``*``, number, why it is not a measurement): only numbers no source prints
ALLOWED = (
    ("*", "4,096", "a setting: the token memo's size"),
    ("*", "32,768", "a setting: --max-batch-tokens on a GPU"),
    ("*", "6,980", "a data fact: MS MARCO dev's query count"),
    ("*", "698,000", "arithmetic on a data fact: 6,980 queries x 100 candidates"),
    ("cpu-and-long-documents.md", "4.58", "a version pin: optimum-onnx / optimum-intel need transformers < 4.58"),
)


@dataclass(frozen=True)
class Quote:
    """A number a doc quotes: where (line, column from 1), which kind, the number as written, the line's text."""

    path: str
    line: int
    column: int
    kind: str
    number: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.number} ({self.kind}) not printed by any results file: {self.text.strip()}"


def _key(number: str) -> str:
    """How a number is looked up: without thousands separators; ``N min M s`` as its seconds."""
    m = re.fullmatch(r"(\d+) min (\d+) s", number)
    return str(int(m.group(1)) * 60 + int(m.group(2))) if m else number.replace(",", "")


def quotes(text: str, path: str = "") -> list[Quote]:
    """Every measured-looking number in ``text``, in reading order (one per position: the first
    kind of :data:`PATTERNS` that matches there)."""
    out: list[Quote] = []
    for i, line in enumerate(text.splitlines(), 1):
        seen: set[int] = set()
        for kind, rx in PATTERNS:
            for m in rx.finditer(line):
                start = m.start(1)
                if start in seen or _APPROX.search(line[:start]):
                    continue
                seen.add(start)
                number = m.group(1) + ("%" if kind == "percent" else "")
                out.append(Quote(path, i, start + 1, kind, number, line))
    return sorted(out, key=lambda q: (q.line, q.column))


def source_numbers(paths: Iterable[Path]) -> set[str]:
    """Every number token the sources print (commas dropped), and each percentage as ``N%``."""
    tokens: set[str] = set()
    for p in paths:
        text = p.read_text(encoding="utf-8", errors="replace")
        tokens.update(_key(t) for t in re.findall(_NUM, text))
        tokens.update(_key(t) + "%" for t in re.findall(r"(\d+(?:\.\d+)?)%", text))
        tokens.update(str(int(float(t))) for t in re.findall(r"(\d+\.\d+) ?s\b", text))  # 442.42s: 7 min 22 s
        tokens.update(_key(t) for t in re.findall(r"\d+ min \d+ s", text))
    return tokens


def sources(root: Path) -> list[Path]:
    """The files a quoted number may come from: ``benchmarks/results/*`` and the conditions YAML."""
    from rankstack.repro.conditions import DEFAULT_CONDITIONS

    found = sorted(p for p in (root / "benchmarks" / "results").glob("*") if p.is_file())
    return found + [DEFAULT_CONDITIONS]


def _allowed(path: str, number: str) -> bool:
    name = Path(path).name
    return any(f in ("*", name) and n == number for f, n, _ in ALLOWED)


def check(docs: Iterable[Path], root: Path) -> list[Quote]:
    """The quotes of ``docs`` that no source prints and :data:`ALLOWED` does not name."""
    known = source_numbers(sources(root))
    bad = []
    for doc in docs:
        rel = str(doc.relative_to(root)) if doc.is_relative_to(root) else str(doc)
        for q in quotes(doc.read_text(encoding="utf-8"), rel):
            if _key(q.number) not in known and not _allowed(rel, q.number):
                bad.append(q)
    return bad
