"""Teachers for distillation: any TREC run, or a reranker that rankstack runs.

The student learns the teacher's order over each query's first-stage candidates (METHODS.md
section 9), not human labels. A teacher is given as

- a TREC run file (a dense run, a cross-encoder run, a 70B model's run made elsewhere):
  ``load_teacher("runs/teacher.trec")``; its scores are used as they are;
- a reranker spec ``NAME:MODEL`` that rankstack runs over the candidates:
  ``load_teacher("dense:minilm-l6")``, ``load_teacher("first:runs/first-model")``,
  ``load_teacher("cross_encoder:cross-encoder/ms-marco-MiniLM-L6-v2")``; a pointwise method as
  ``pointwise-METHOD:MODEL``, and ``qlm:MODEL`` for query likelihood (``pointwise-qlm``);
- ``bm25`` (or ``first-stage``): the candidates' own first-stage scores;
- an **ensemble** of any of these joined by ``+``: ``load_teacher("dense:minilm-l6+bm25",
  weights=[0.8, 0.2])``: per query, each member's scores are z-scored over the same candidates
  and summed with the weights (default equal), a teacher better than any one member when they
  err differently (:class:`EnsembleTeacher`).

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


class FirstStageTeacher(Teacher):
    """The candidates' own first-stage scores (BM25's, for the distillation recipe's candidates):
    a member of an ensemble, never a teacher worth distilling alone."""

    def __init__(self, name: str = "first-stage"):
        self.name = name

    def rank(self, run: Run, queries=None, corpus=None, depth: int = 100) -> Run:
        return Run((run[q].top(depth) for q in run), name=f"teacher-{self.name}")


class EnsembleTeacher(Teacher):
    """Several teachers fused per query: each member's scores z-scored over the candidates, then
    the weighted sum (weights default to equal). A candidate a member did not score gets that
    member's lowest z-score (:func:`rankstack.retrieval.fusion.interpolate_rankings`)."""

    def __init__(self, members: list[Teacher], weights: list[float] | None = None, name: str | None = None):
        if len(members) < 2:
            raise RankstackError("an ensemble teacher needs two or more members")
        weights = [1.0 / len(members)] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise RankstackError(f"{len(members)} teachers but {len(weights)} weights")
        if any(w < 0 for w in weights) or not sum(weights) > 0:
            raise RankstackError(f"teacher weights must be >= 0 and not all 0, got {weights}")
        self.members, self.weights = members, weights
        self.name = name or "+".join(m.name for m in members)

    def rank(self, run: Run, queries: Mapping[str, Query], corpus, depth: int = 100) -> Run:
        from rankstack.retrieval.fusion import interpolate_rankings

        runs = [m.rank(run, queries, corpus, depth=depth) for m in self.members]
        common = [q for q in run if all(q in r for r in runs)]
        if not common:
            raise RankstackError(f"the ensemble's members ({self.name}) rank no query in common")
        out = Run(name=f"teacher-{self.name}")
        for q in common:
            out[q] = interpolate_rankings([r[q] for r in runs], self.weights, "zscore")
        out.metadata = {"teacher": self.name, "weights": self.weights}
        return out


def _member(spec: str, missing: str, options: dict) -> Teacher:
    """One teacher of a spec (no ``+``); see :func:`load_teacher`."""
    if spec in ("bm25", "first-stage"):
        return FirstStageTeacher(spec)
    if spec.startswith("qrels:"):
        from rankstack.data.datasets import resolve_qrels

        return QrelsTeacher(resolve_qrels(spec[len("qrels:"):]), name=spec)
    if os.path.exists(spec):
        from rankstack.data.trec import read_run

        return RunTeacher(read_run(spec), name=os.path.basename(spec), missing=missing)
    if ":" in spec:
        from rankstack.rerankers.registry import RERANKERS, load_reranker

        name, model = spec.split(":", 1)
        method = None
        if name == "qlm":
            name, method = "pointwise", "qlm"
        elif name.startswith("pointwise-"):
            name, method = "pointwise", name[len("pointwise-"):]
        if name in RERANKERS:
            opts = {**options, **({"method": method} if method else {})}
            return RerankerTeacher(load_reranker(name, model=model, **opts), name=spec)
    from rankstack.rerankers.registry import RERANKERS

    raise RankstackError(f"teacher {spec!r} is neither a run file, bm25, qrels:FILE nor NAME:MODEL with a known "
                         f"reranker (one of {', '.join(sorted(RERANKERS))}, qlm, pointwise-METHOD; "
                         "e.g. dense:minilm-l6, qlm:smollm2-135m, dense:minilm-l6+bm25)")


def parse_weights(text: str | None) -> list[float] | None:
    """``"0.8,0.2"`` -> ``[0.8, 0.2]`` (``None``/empty: equal weights)."""
    if not text:
        return None
    try:
        return [float(w) for w in str(text).split(",")]
    except ValueError:
        raise RankstackError(f"teacher weights must be numbers separated by commas, got {text!r}") from None


def load_teacher(spec, missing: str = "error", weights: list[float] | None = None, **options) -> Teacher:
    """A teacher from a spec.

    Args:
        spec: a :class:`Teacher`, a :class:`Run`, a TREC run file, ``qrels:FILE|DATASET`` (human
            judgements: the supervised variant), ``bm25`` (the candidates' own scores),
            ``NAME:MODEL`` (a reranker; ``qlm:MODEL``, ``pointwise-METHOD:MODEL``), or several of
            these joined by ``+`` (an :class:`EnsembleTeacher`), or a list of specs.
        missing: a run teacher without a candidate's score: ``error`` or ``drop``.
        weights: ensemble weights, one per member (default equal).
        **options: passed to every reranker teacher's ``load_reranker``.

    Returns:
        The :class:`Teacher`.
    """
    if isinstance(spec, Teacher):
        return spec
    if isinstance(spec, Run):
        return RunTeacher(spec, missing=missing)
    parts = list(spec) if isinstance(spec, (list, tuple)) else None
    if parts is None and not os.path.exists(str(spec)) and "+" in str(spec):
        parts = [p.strip() for p in str(spec).split("+") if p.strip()]
    if parts is not None:
        members = [load_teacher(p, missing=missing, **options) for p in parts]
        return members[0] if len(members) == 1 and weights is None else EnsembleTeacher(
            members, weights, name="+".join(m.name for m in members))
    if weights is not None:
        raise RankstackError(f"teacher weights {weights} given for the single teacher {spec!r}")
    return _member(str(spec), missing, options)


# --- what builders derive from a teacher --------------------------------------------------------


def zscores(ranking: Ranking) -> dict[str, float]:
    """Per-query z-scores of the teacher's scores (all 0 when they are constant)."""
    from rankstack.retrieval.fusion import normalize

    return normalize(ranking.scores(), "zscore")


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
