"""Teachers for distillation: any TREC run, or a reranker that rankstack runs.

The student learns the teacher's order over each query's first-stage candidates (METHODS.md
section 9), not human labels. A teacher is given as

- a TREC run file (a dense run, a cross-encoder run, a 70B model's run made elsewhere):
  ``load_teacher("runs/teacher.trec")``; its scores are used as they are;
- a reranker spec ``NAME:MODEL`` that rankstack runs over the candidates:
  ``load_teacher("dense:minilm-l6")``, ``load_teacher("first:runs/first-model")``,
  ``load_teacher("cross_encoder:cross-encoder/ms-marco-MiniLM-L6-v2")``.

:meth:`Teacher.rank` returns the teacher's :class:`Run` over exactly the candidates of a
first-stage run (its top ``depth``), which is what every example builder takes as ``teacher=``.
A candidate the teacher run does not score raises :class:`MissingTeacherScoreError` naming the
query and the docid (``missing="drop"`` leaves such candidates out instead, counted); a teacher
run that shares no query with the candidates is an error, never an empty dataset.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping

from rankstack.errors import RankstackError
from rankstack.types import Qrels, Query, Ranking, Run

log = logging.getLogger(__name__)


class MissingTeacherScoreError(RankstackError):
    """A candidate has no score in the teacher run."""

    def __init__(self, qid: str, docid: str, source: str):
        self.qid, self.docid = qid, docid
        super().__init__(f"the teacher run {source} has no score for document {docid!r} of query {qid!r} "
                         "(rank the same candidates with the teacher, or pass missing='drop')")


class Teacher:
    """Scores a first-stage run's candidates. Subclasses: :class:`RunTeacher`, :class:`RerankerTeacher`."""

    name = "teacher"

    def rank(self, run: Run, queries: Mapping[str, Query], corpus, depth: int = 100) -> Run:
        raise NotImplementedError


class RunTeacher(Teacher):
    """A teacher given as a run (scores as they are)."""

    def __init__(self, run: Run, name: str | None = None, missing: str = "error"):
        if missing not in ("error", "drop"):
            raise RankstackError(f"missing must be 'error' or 'drop', got {missing!r}")
        if not len(run):
            raise RankstackError(f"the teacher run {name or run.name!r} is empty")
        self.run, self.missing = run, missing
        self.name = name or run.name
        self.stats: Counter = Counter()

    def rank(self, run: Run, queries: Mapping[str, Query] | None = None, corpus=None, depth: int = 100) -> Run:
        common = [q for q in run if q in self.run]
        if not common:
            raise RankstackError(f"the teacher run {self.name!r} shares no query with the candidates "
                                 f"(teacher qids e.g. {sorted(self.run)[:3]}, candidates e.g. {sorted(run)[:3]})")
        lost = [q for q in run if q not in self.run]
        if lost:
            self.stats["teacher_queries_missing"] += len(lost)
            log.warning("the teacher run %s has no ranking for %d of %d queries (e.g. %s): they are left out",
                        self.name, len(lost), len(run), lost[0])
        out = Run(name=f"teacher-{self.name}")
        for qid in common:
            have = self.run[qid].scores()
            pairs = []
            for docid in run[qid].docids[:depth]:
                if docid in have:
                    pairs.append((docid, have[docid]))
                elif self.missing == "error":
                    raise MissingTeacherScoreError(qid, docid, repr(self.name))
                else:
                    self.stats["teacher_docs_missing"] += 1
            if pairs:
                out[qid] = Ranking.from_scores(qid, pairs)
        out.metadata = {"teacher": self.name, **dict(self.stats)}
        return out


class RerankerTeacher(Teacher):
    """A teacher that rankstack runs: any registered reranker (cached like every rerank run)."""

    def __init__(self, reranker, name: str | None = None):
        self.reranker = reranker
        self.name = name or reranker.name

    def rank(self, run: Run, queries: Mapping[str, Query], corpus, depth: int = 100) -> Run:
        out = self.reranker.rerank_run(run.top(depth), queries, corpus, depth=depth, name=f"teacher-{self.name}")
        out.metadata["teacher"] = self.name
        return out


class QrelsTeacher(Teacher):
    """Human judgements as a teacher (the supervised variant of a distillation recipe): each
    candidate's score is its grade, unjudged candidates 0."""

    def __init__(self, qrels: Qrels, name: str = "qrels"):
        if not qrels:
            raise RankstackError("the qrels are empty")
        self.qrels, self.name = qrels, name

    def rank(self, run: Run, queries=None, corpus=None, depth: int = 100) -> Run:
        judged = [q for q in run if q in self.qrels]
        if not judged:
            raise RankstackError(f"the qrels {self.name!r} judge none of the candidates' queries")
        out = Run(name=f"teacher-{self.name}", metadata={"teacher": self.name})
        for q in judged:
            grades = self.qrels[q]
            out[q] = Ranking.from_scores(q, [(d, float(grades.get(d, 0))) for d in run[q].docids[:depth]])
        return out


def load_teacher(spec, missing: str = "error", **options) -> Teacher:
    """A teacher from a spec: a :class:`Run`, a TREC run file, ``qrels:FILE|DATASET`` (human
    judgements: the supervised variant) or ``NAME:MODEL`` (a reranker)."""
    if isinstance(spec, Teacher):
        return spec
    if isinstance(spec, Run):
        return RunTeacher(spec, missing=missing)
    spec = str(spec)
    if spec.startswith("qrels:"):
        from rankstack.data.datasets import resolve_qrels

        return QrelsTeacher(resolve_qrels(spec[len("qrels:"):]), name=spec)
    if os.path.exists(spec):
        from rankstack.data.trec import read_run

        return RunTeacher(read_run(spec), name=os.path.basename(spec), missing=missing)
    if ":" in spec:
        from rankstack.rerankers.registry import RERANKERS, load_reranker

        name, model = spec.split(":", 1)
        if name in RERANKERS:
            return RerankerTeacher(load_reranker(name, model=model, **options), name=spec)
    raise RankstackError(f"teacher {spec!r} is neither a run file nor NAME:MODEL with a known reranker "
                         "(e.g. dense:minilm-l6, first:PATH)")


# --- what builders derive from a teacher --------------------------------------------------------


def zscores(ranking: Ranking) -> dict[str, float]:
    """Per-query z-scores of the teacher's scores (all 0 when they are constant)."""
    s = ranking.scores()
    if not s:
        return {}
    mean = sum(s.values()) / len(s)
    sd = math.sqrt(sum((v - mean) ** 2 for v in s.values()) / len(s))
    return {d: ((v - mean) / sd if sd > 0 else 0.0) for d, v in s.items()}


def soft_targets(ranking: Ranking, temperature: float = 1.0) -> dict[str, float]:
    """A yes-probability per candidate: sigmoid(z / T) of the teacher's per-query z-score
    **[DEFAULT]** (METHODS.md section 9)."""
    return {d: 1.0 / (1.0 + math.exp(-z / temperature)) for d, z in zscores(ranking).items()}


def score_bins(ranking: Ranking) -> dict[str, int]:
    """0-10 targets for ERank / score10: round(10 * min-max(teacher score)) **[DEFAULT]**."""
    s = ranking.scores()
    lo, hi = min(s.values()), max(s.values())
    return {d: (round(10 * (v - lo) / (hi - lo)) if hi > lo else 5) for d, v in s.items()}


#: teacher rank cut-offs -> grade: ranks 1 -> 3, 2-3 -> 2, 4-10 -> 1, the rest 0 **[DEFAULT]**
RANK_GRADES = ((1, 3), (3, 2), (10, 1))


def grades_from_ranks(ranking: Ranking, levels=RANK_GRADES) -> dict[str, int]:
    """Graded pseudo-judgements from the teacher's ranks, for builders and rewards that read
    grades (setwise, groupwise, rubric; GRPO rewards)."""
    out = {}
    for r, d in enumerate(ranking.docids, 1):
        out[d] = next((g for cut, g in levels if r <= cut), 0)
    return out


def teacher_qrels(teacher: Run, levels=RANK_GRADES) -> Qrels:
    """:func:`grades_from_ranks` for every query of a teacher run."""
    return {q: grades_from_ranks(r, levels) for q, r in teacher.items()}
