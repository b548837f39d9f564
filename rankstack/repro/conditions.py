"""Reproduction conditions: what was measured, how, on which machine, and where it was recorded.

The conditions live in a YAML file (the packaged :data:`DEFAULT_CONDITIONS`, or your own) of the form::

    defaults: {collection: dl19, first_stage: BM25 (shipped run), metric: nDCG@10, tolerance: 0}
    conditions:
      - id: dl19-bm25
        reranker: none
        command: rankstack eval dl19 --qrels dl19 -m nDCG@10   # run by bash from the repository root
        pattern: '^dl19\\s+([\\d.]+)'        # group 1 of this regex on the command's output: the measured number
        expected: 0.5058
        results: benchmarks/results/dense_dl19.txt   # the file the number was recorded in
        results_pattern: '^BM25\\s+([\\d.]+)'        # how that file prints it (default: pattern)
        machine: {cpu: avx512_bf16, threads: 2, dtype: float32}
        quick: true

Every key of ``defaults`` applies to every condition that does not set it. ``after`` /
``results_after``: the regex is searched only after the first occurrence of that text (a table in
a file of several). ``requires``: Python modules the command needs (missing: the condition is
skipped). ``tolerance_other``: the tolerance on a machine of another CPU kind (default:
``tolerance``). In a command, ``$WORK`` is an empty folder of the condition's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from rankstack.errors import RankstackError

DEFAULT_CONDITIONS = Path(__file__).with_name("conditions.yaml")
_REQUIRED = ("id", "collection", "first_stage", "reranker", "metric", "expected", "tolerance", "command", "pattern",
             "results", "machine")
_MACHINE_KEYS = ("cpu", "threads", "dtype")


@dataclass(frozen=True)
class Condition:
    """One reproducible number. See the module docstring for each field."""

    id: str
    collection: str
    first_stage: str
    reranker: str
    metric: str
    expected: float
    tolerance: float
    command: str
    pattern: str
    results: str
    machine: dict
    model: str | None = None
    depth: int | None = None
    queries: int | None = None
    after: str | None = None
    results_pattern: str | None = None
    results_after: str | None = None
    tolerance_other: float | None = None
    requires: tuple[str, ...] = ()
    quick: bool = False
    note: str | None = None
    extra: dict = field(default_factory=dict)

    def tolerance_on(self, cpu_kind: str) -> float:
        """The tolerance that applies on a machine of ``cpu_kind``."""
        same = self.machine.get("cpu") in (cpu_kind, "any")
        return self.tolerance if same or self.tolerance_other is None else self.tolerance_other


def find_number(text: str, pattern: str, after: str | None = None) -> str | None:
    """The number group 1 of ``pattern`` (a multi-line regex) finds in ``text``, searched after the
    first ``after`` when given, as written there (without a significance mark ``+``/``-``); None
    when there is none or it is not a number."""
    if after is not None:
        cut = text.find(after)
        if cut < 0:
            return None
        text = text[cut + len(after):]
    m = re.search(pattern, text, re.MULTILINE)
    if m is None or m.lastindex is None:
        return None
    raw = m.group(1).rstrip("+-").replace(",", "")
    try:
        float(raw)
    except ValueError:
        return None
    return raw


def recorded_number(cond: Condition, root: Path) -> str | None:
    """The number the condition's results file records, as written there (None: the file or the
    number is missing)."""
    path = root / cond.results
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    own = cond.results_pattern is not None or cond.results_after is not None
    return find_number(text, cond.results_pattern or cond.pattern, cond.results_after if own else cond.after)


def _condition(raw: dict, defaults: dict, where: str) -> Condition:
    data = {**defaults, **raw}
    missing = [k for k in _REQUIRED if data.get(k) is None]
    if missing:
        raise RankstackError(f"{where}: missing {', '.join(missing)}")
    known = {f.name for f in fields(Condition)} - {"extra"}
    extra = {k: v for k, v in data.items() if k not in known}
    kwargs = {k: v for k, v in data.items() if k in known}
    if not isinstance(kwargs["machine"], dict) or set(kwargs["machine"]) != set(_MACHINE_KEYS):
        raise RankstackError(f"{where}: machine must give exactly {', '.join(_MACHINE_KEYS)}")
    try:
        for k in ("expected", "tolerance") + (("tolerance_other",) if kwargs.get("tolerance_other") is not None else ()):
            kwargs[k] = float(kwargs[k])
        re.compile(kwargs["pattern"], re.MULTILINE)
        if kwargs.get("results_pattern"):
            re.compile(kwargs["results_pattern"], re.MULTILINE)
    except (TypeError, ValueError, re.error) as e:
        raise RankstackError(f"{where}: {e}") from None
    kwargs["requires"] = tuple(kwargs.get("requires") or ())
    kwargs["command"] = str(kwargs["command"]).strip()
    return Condition(**kwargs, extra=extra)


def load_conditions(path: str | Path | None = None) -> list[Condition]:
    """The conditions of a YAML file (default: the packaged one), checked: a clear error names the
    file and the condition (its id, or its position) for a missing key, a bad regex or a repeated id."""
    import yaml

    path = Path(path) if path is not None else DEFAULT_CONDITIONS
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RankstackError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("conditions"), list):
        raise RankstackError(f"{path}: expected a mapping with a 'conditions' list")
    defaults = doc.get("defaults") or {}
    out, seen = [], set()
    for i, raw in enumerate(doc["conditions"], 1):
        if not isinstance(raw, dict):
            raise RankstackError(f"{path}: condition {i} is not a mapping")
        c = _condition(raw, defaults, f"{path}: condition {raw.get('id', i)!s}")
        if c.id in seen:
            raise RankstackError(f"{path}: condition id {c.id!r} appears twice")
        seen.add(c.id)
        out.append(c)
    return out


def select(conditions: list[Condition], only=None, quick: bool = False) -> list[Condition]:
    """The conditions ``--only`` names (ids or shell-style patterns, in the file's order) and/or
    the quick ones; an id that matches nothing is an error."""
    from fnmatch import fnmatchcase

    chosen = conditions
    if only:
        for pat in only:
            if not any(fnmatchcase(c.id, pat) for c in conditions):
                raise RankstackError(f"no condition matches {pat!r} (rankstack repro --list shows the ids)")
        chosen = [c for c in chosen if any(fnmatchcase(c.id, p) for p in only)]
    if quick:
        chosen = [c for c in chosen if c.quick]
    return chosen
