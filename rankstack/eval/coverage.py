"""Which judged queries a score is computed over, and what a user is told about the rest.

A run that holds fewer queries than the qrels judge (a quick look at 5 queries, a crashed job)
is scored by default on the judged queries it holds: a partial run is neither sunk by zeros for
queries it never saw nor compared on different queries than the run beside it. Several runs
are scored on the judged queries every one of them holds, so per-query comparisons (paired
tests, deltas) compare like with like. ``missing_as_zero=True`` is TREC's convention
(``trec_eval -c``): every judged query counts, a missing one as 0.

:func:`coverage` decides the query set; :meth:`Coverage.messages` are the lines that say what
was left out, the same words in ``rankstack eval``, ``rerank --qrels``, ``compare``,
``evaluate``, the demo and the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rankstack.errors import RankstackError
from rankstack.types import Qrels

#: how many qids a message lists before it says "and N more"
LISTED = 10


def listed(qids: Sequence[str], limit: int = LISTED) -> str:
    """``"q1, q2, q3 and 4 more"``."""
    shown = ", ".join(qids[:limit])
    return shown + (f" and {len(qids) - limit} more" if len(qids) > limit else "")


@dataclass
class Coverage:
    """The judged queries scored (``qids``, in qrels order) and those left out."""

    qids: list[str]
    judged: int                                            # queries the qrels judge
    lacking: dict[str, list[str]] = field(default_factory=dict)  # run -> judged queries it lacks
    missing_as_zero: bool = False

    @property
    def left_out(self) -> list[str]:
        """Judged queries not scored (empty with ``missing_as_zero``)."""
        scored = set(self.qids)
        out: list[str] = []
        for qs in self.lacking.values():
            out += [q for q in qs if q not in scored and q not in out]
        return out

    def messages(self) -> list[str]:
        """What a reader needs to know about the query set (empty when every run holds every judged query)."""
        if not any(self.lacking.values()):
            return []
        if self.missing_as_zero:
            parts = [f"{n} lacks {len(qs)} ({listed(qs)})" for n, qs in self.lacking.items() if qs]
            return [f"missing judged queries count as 0 (--missing-as-zero): {'; '.join(parts)}; "
                    f"scored over all {self.judged} judged queries"]
        if self.same_lacking:
            name, qs = next(iter(self.lacking.items()))
            who = name if len(self.lacking) == 1 else "the runs"
            return [f"{who} {'holds' if len(self.lacking) == 1 else 'hold'} {len(self.qids)} of the {self.judged} "
                    f"judged queries: scored on those {len(self.qids)}; left out {len(qs)} ({listed(qs)}); "
                    f"--missing-as-zero (missing_as_zero=True) counts them as 0"]
        parts = [f"{n} lacks {len(qs)} ({listed(qs)})" for n, qs in self.lacking.items() if qs]
        return [f"the runs hold different judged queries: {'; '.join(parts)}. Evaluated on the {len(self.qids)} "
                f"judged queries every run holds (--missing-as-zero, missing_as_zero=True: all {self.judged}, "
                f"missing ones 0)"]

    @property
    def same_lacking(self) -> bool:
        """Every run lacks the same judged queries (a query set, not a difference between runs)."""
        return len({tuple(qs) for qs in self.lacking.values()}) <= 1


def coverage(runs: Mapping[str, Iterable[str]], qrels: Qrels, missing_as_zero: bool = False) -> Coverage:
    """The judged queries to score ``runs`` (name -> its qids, or a Run) on.

    Default: those every run holds; ``missing_as_zero``: all judged queries. Raises when the
    qrels judge nothing, or (default) when no judged query is held by every run."""
    judged = [q for q, docs in qrels.items() if docs]
    if not judged:
        raise RankstackError("the qrels judge no query")
    held = {name: set(r) for name, r in runs.items()}
    lacking = {name: [q for q in judged if q not in h] for name, h in held.items()}
    if missing_as_zero:
        return Coverage(judged, len(judged), lacking, True)
    qids = [q for q in judged if all(q in h for h in held.values())]
    if not qids:
        if not any(q in h for q in judged for h in held.values()):
            raise RankstackError(f"no run holds a judged query (the qrels judge {len(judged)}, e.g. "
                                 f"{listed(judged, 3)}): do the runs and the qrels belong together?")
        raise RankstackError("the runs share no judged query; --missing-as-zero scores them over all judged queries")
    return Coverage(qids, len(judged), lacking, False)
