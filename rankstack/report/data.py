"""What the report shows, gathered once: the runs, their per-query values (through
:func:`rankstack.eval.evaluate`, the code ``rankstack eval`` runs), deltas against the baseline,
each query's top passages with grades, the rank change of every judged relevant passage, and
the runs' metadata (the ``RUN.meta.json`` sidecar ``rankstack rerank`` writes).

Runs that hold different judged queries are evaluated on the judged queries every run holds,
and a warning names each run's missing ones (so a run that dropped queries is neither flattered
nor sunk by zeros, and every per-query delta compares like with like): the query set of
``rankstack eval`` (:mod:`rankstack.eval.coverage`), whose numbers the page shows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.data.corpus import DocStore
from rankstack.errors import MissingDocumentError, RankstackError
from rankstack.types import Qrels, Query, Run

log = logging.getLogger(__name__)

@dataclass
class RunEntry:
    """One run of the report: its name, rankings, and metadata (None: none found, ``meta_note`` says why)."""

    name: str
    run: Run
    metadata: dict[str, Any] | None = None
    meta_note: str = ""
    _ranks: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def rank(self, qid: str, docid: str) -> int | None:
        """1-based rank of ``docid`` in this run's list for ``qid`` (None: not retrieved)."""
        if qid not in self._ranks:
            ranking = self.run.get(qid)
            self._ranks[qid] = {d.docid: i for i, d in enumerate(ranking.docs, 1)} if ranking else {}
        return self._ranks[qid].get(docid)

    def top(self, qid: str, k: int) -> list[str]:
        ranking = self.run.get(qid)
        return ranking.docids[:k] if ranking else []


@dataclass
class Entry:
    """One line of a query's top-k list: rank, docid, grade (None: unjudged), baseline rank, text start."""

    rank: int
    docid: str
    grade: int | None
    base_rank: int | None
    text: str | None


@dataclass
class RankChange:
    """A judged relevant passage: its grade and its rank in each run (None: not retrieved)."""

    docid: str
    grade: int
    ranks: dict[str, int | None]


@dataclass
class ReportData:
    runs: list[RunEntry]                     # baseline first
    baseline: str | None
    measures: list[str]                      # as ir-measures names them (the keys of per_query)
    per_query: dict[str, dict[str, dict[str, float]]]  # run -> measure -> qid -> value
    qids: list[str]                          # the evaluated queries (judged, held by every run)
    qrels: Qrels
    rel: int | None
    queries: Mapping[str, Query] | None = None
    corpus: DocStore | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.runs]

    def entry(self, name: str) -> RunEntry:
        return next(r for r in self.runs if r.name == name)

    # --- per query ------------------------------------------------------------------------------
    def deltas(self, name: str, measure: str) -> dict[str, float]:
        """``run - baseline`` per evaluated query."""
        base, run = self.per_query[self.baseline][measure], self.per_query[name][measure]
        return {q: run[q] - base[q] for q in self.qids}

    def query_text(self, qid: str) -> str | None:
        q = (self.queries or {}).get(qid)
        return q.text if q is not None else None

    def passage_start(self, docid: str, words: int) -> str | None:
        """The first ``words`` words of the passage (None without a corpus; a note when it lacks the docid)."""
        if self.corpus is None:
            return None
        try:
            doc = self.corpus.get(docid)
        except MissingDocumentError:
            return "(not in the corpus)"
        toks = doc.full_text.split()
        return " ".join(toks[:words]) + (" ..." if len(toks) > words else "")

    def top_entries(self, name: str, qid: str, k: int, words: int) -> list[Entry]:
        base = self.entry(self.baseline) if self.baseline else None
        judged = self.qrels.get(qid, {})
        return [Entry(i, d, judged.get(d), base.rank(qid, d) if base else None, self.passage_start(d, words))
                for i, d in enumerate(self.entry(name).top(qid, k), 1)]

    def rank_changes(self, qid: str) -> tuple[list[RankChange], list[tuple[str, int]]]:
        """Every judged relevant passage (grade > 0) of ``qid``: those some run retrieved, with their
        ranks (best grade first, then best baseline rank), and ``(docid, grade)`` of those no run has."""
        found, missed = [], []
        for docid, grade in self.qrels.get(qid, {}).items():
            if grade <= 0:
                continue
            ranks = {r.name: r.rank(qid, docid) for r in self.runs}
            if any(v is not None for v in ranks.values()):
                found.append(RankChange(docid, grade, ranks))
            else:
                missed.append((docid, grade))
        first = self.runs[0].name
        found.sort(key=lambda c: (-c.grade, c.ranks[first] or 10**9, c.docid))
        missed.sort(key=lambda x: (-x[1], x[0]))
        return found, missed


def outcome(deltas: Mapping[str, float], eps: float = 1e-9) -> tuple[int, int, int]:
    """(wins, losses, ties) of a run against the baseline over its per-query deltas."""
    wins = sum(1 for d in deltas.values() if d > eps)
    losses = sum(1 for d in deltas.values() if d < -eps)
    return wins, losses, len(deltas) - wins - losses


# --- gathering ------------------------------------------------------------------------------------
def _load_runs(runs) -> list[RunEntry]:
    """``runs``: a mapping name -> Run or path, or a sequence of Runs, paths, or ``NAME=PATH`` strings."""
    from rankstack.data.datasets import resolve_run_path
    from rankstack.data.trec import read_run, read_run_metadata, run_metadata_path
    from rankstack.eval.commands import _named

    items: list[tuple[str | None, Any]]
    if isinstance(runs, Mapping):
        items = list(runs.items())
    elif isinstance(runs, (str, os.PathLike, Run)):
        items = [(None, runs)]
    else:
        items = [(None, r) for r in runs]
    out: list[RunEntry] = []
    for name, obj in items:
        if isinstance(obj, Run):
            md = dict(obj.metadata) or None
            out.append(RunEntry(name or obj.name, obj, md, "" if md else "the run carries no metadata"))
            continue
        if name is None:
            name, obj = _named(str(obj))
        path = resolve_run_path(obj)  # a run file, or a dataset's first-stage run
        md = read_run_metadata(path)
        out.append(RunEntry(name, read_run(path), md,
                            "" if md is not None else f"no {Path(run_metadata_path(path)).name} beside the run file"))
    if not out:
        raise RankstackError("no runs to report on")
    seen: set[str] = set()
    for e in out:
        if e.name in seen:
            raise RankstackError(f"two runs are named {e.name!r}; label them NAME=PATH")
        seen.add(e.name)
    return out


def gather(runs, qrels: Qrels, queries: Mapping[str, Query] | None = None, corpus: DocStore | None = None,
           measures: Sequence[str] | str = ("nDCG@10",), baseline: str | None = None,
           rel: int | None = None, missing_as_zero: bool = False) -> ReportData:
    """Read and evaluate everything the page shows (see the module docstring for the query set;
    ``missing_as_zero``: every judged query, a missing one 0, as ``rankstack eval --missing-as-zero``)."""
    from rankstack.eval import evaluate_runs
    from rankstack.eval.coverage import listed
    from rankstack.eval.fallbacks import fallback_warning

    entries = _load_runs(runs)
    names = [e.name for e in entries]
    if baseline is not None:
        if baseline not in names:
            raise RankstackError(f"baseline {baseline!r} is not one of the runs ({', '.join(names)})")
        entries.sort(key=lambda e: e.name != baseline)  # baseline first, the others in the order given
    base = entries[0].name if len(entries) > 1 else None
    warnings: list[str] = []
    notes: list[str] = []
    try:
        per, cov = evaluate_runs({e.name: e.run for e in entries}, qrels, measures, rel, missing_as_zero)
    except RankstackError as e:
        raise RankstackError(f"{e} (the runs: {', '.join(names)})") from None
    common = cov.qids
    if cov.same_lacking and not missing_as_zero:  # no run lacks what another holds: a note on the query set
        unheld = cov.left_out
        if unheld:
            notes.append(f"the qrels judge {len(unheld)} queries no run holds ({listed(unheld)}); "
                         f"--missing-as-zero would count them as 0.")
    else:
        for msg in cov.messages():
            log.warning(msg)
            warnings.append(msg)
    for e in entries:
        fell = fallback_warning(e.metadata)
        if fell:
            log.warning("%s: %s", e.name, fell)
            warnings.append(f"{e.name}: {fell}")
    ms = list(next(iter(per.values())))
    if queries is not None:
        no_text = [q for q in common if q not in queries]
        if no_text:
            notes.append(f"{len(no_text)} queries have no text in the topics given ({listed(no_text)}).")
    else:
        notes.append("no topics given: queries are shown by id.")
    if corpus is None:
        notes.append("no corpus given: passages are shown by docid, without text.")
    return ReportData(entries, base, ms, per, common, qrels, rel, queries, corpus, warnings, notes)
