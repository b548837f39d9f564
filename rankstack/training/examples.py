"""Training examples from queries + qrels + a first-stage run + a corpus.

Every builder renders its prompts through the reranker that will use the trained model (its
``prompt``/``build_prompt``/``fit_prompt`` and ``prepare_doc``), so training and inference see
the same text. Pass ``backend=`` (an ``HFBackend``) to cut passages to the reranker's token
budget with the model's tokenizer, exactly as at inference; without one, passages are used
whole (window prompts still clean their identifiers).

Output: a Hugging Face ``datasets.Dataset``, one row per example, with

- ``prompt``: the chat messages (``[{"role", "content"}, ...]``), ``assistant_prefix``: text the
  assistant turn starts with (FIRST's none, ERank fast mode's ``<think> </think><answer>``);
- ``completion``: the target text; plus per-paradigm columns the rewards read (``qid``,
  ``docid``, ``label``, ``grades``, ``docids``, ``gold``, ``teacher_score``, ...).

:func:`rankstack.training.sft.to_prompt_completion` renders ``prompt`` + ``assistant_prefix``
with the model's chat template into the strings TRL trains on.

Sampling: queries are split with :func:`split_queries` (seeded); pointwise examples take, per
query, up to ``n_pos`` positives (grade >= ``positive_min``) from the run's top ``depth`` (then
from the other judged documents the corpus holds), ``n_hard`` hard negatives drawn from the
run's top ``hard_depth`` below that grade, and ``n_random`` random negatives drawn from other
queries' candidates (unjudged for this query: grade 0) **[DEFAULT]**.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from rankstack.data.corpus import DocStore
from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt
from rankstack.training.example_inputs import (candidate_pool, check_inputs, prompt_from_row, require_text_and_candidates,
                                               sample_candidates, split_queries, to_dataset)
from rankstack.types import Qrels, Query, Run

log = logging.getLogger(__name__)

__all__ = ["BUILDERS", "build_examples", "candidate_sets", "first_examples", "groupwise_examples", "ideal_permutation",
           "listwise_examples", "pointwise_examples", "pointwise_target", "prompt_from_row", "rubric_examples",
           "sample_candidates", "score_target", "setwise_examples", "split_queries", "window_examples"]


def _messages(prompt: Prompt) -> list[dict]:
    return prompt.as_dicts()


# --- pointwise --------------------------------------------------------------------------------


def score_target(grade: int, max_grade: int) -> int:
    """A 0-10 target from a graded judgement: round(10 * grade / max_grade) **[DEFAULT]**."""
    return round(10 * max(0, grade) / max_grade) if max_grade > 0 else 0


def pointwise_target(method: str, grade: int, max_grade: int, positive_min: int) -> str:
    if method == "yesno":
        return "Yes" if grade >= positive_min else "No"
    if method == "prorank":
        return "1" if grade >= positive_min else "0"
    s = score_target(grade, max_grade)
    if method == "score10":  # the template's assistant prefix already opened <answer>
        return f"{s}</answer>"
    if method == "erank":  # no teacher reasoning here: an empty think block [DEFAULT]
        return f"<think> </think><answer>{s}</answer>"
    if method == "qlm":
        raise RankstackError("query-likelihood examples need teacher= (a run, or qrels turned into one: "
                             "load_teacher('qrels:...')): the student learns the teacher's order of the candidates")
    raise RankstackError(f"unknown pointwise method {method!r}")


def pointwise_examples(queries: Mapping[str, Query], qrels: Qrels | None, run: Run, corpus: DocStore, *,
                       method: str = "yesno", qids: Sequence[str] | None = None, backend=None, reranker=None,
                       teacher: Run | None = None, group_size: int = 8, n_top: int = 2,
                       n_pos: int = 2, n_hard: int = 4, n_random: int = 2, depth: int = 100, hard_depth: int = 30,
                       positive_min: int = 1, seed: int = 0, **reranker_options):
    """One (query, passage) example per sampled candidate: targets ``Yes``/``No`` (yesno), ``1``/``0``
    (prorank), 0-10 scores (score10, erank). Columns: qid, docid, label (grade), kind,
    teacher_score (the 0-10 target), prompt, assistant_prefix, completion.

    With ``teacher=`` (a teacher's run over the candidates, see :mod:`rankstack.training.teacher`)
    no qrels are needed: per query a *group* of ``group_size`` candidates is drawn from the run's
    top ``depth`` (the teacher's top ``n_top`` and a seeded sample of the rest, **[DEFAULT]**) and
    each row carries soft targets: ``target`` = sigmoid of the teacher's per-query z-score (the
    yes-probability), ``target_bin`` = round(10 * min-max) (the 0-10 bin for score10/erank),
    ``teacher_score`` (raw) and ``label`` (a grade from the teacher's rank). ``completion`` is the
    hard version (``Yes`` when target >= 0.5; the bin for score10/erank), so plain SFT can use the
    rows too; :func:`rankstack.training.distill.train_pointwise_distill` trains on the soft ones.
    """
    from rankstack.rerankers.pointwise import PointwiseReranker

    rr = reranker or PointwiseReranker(backend, method=method, cache=False, progress=False, **reranker_options)
    method = getattr(rr, "method", method)
    if teacher is not None:
        return _teacher_pointwise(rr, method, queries, qrels, run, corpus, teacher, qids, group_size, n_top, depth,
                                  seed)
    max_grade = _max_grade(qrels)
    rng = random.Random(seed)
    rows = [{**row, "teacher_score": score_target(row["label"], max_grade),
             "completion": pointwise_target(method, row["label"], max_grade, positive_min)}
            for row in _pair_rows(rr, queries, qrels, run, corpus, qids, rng, n_pos=n_pos, n_hard=n_hard,
                                  n_random=n_random, depth=depth, hard_depth=hard_depth, positive_min=positive_min)]
    rng.shuffle(rows)
    return to_dataset(rows)


def _teacher_pointwise(rr, method, queries, qrels, run, corpus, teacher: Run, qids, group_size, n_top, depth, seed):
    from rankstack.training.teacher import grades_from_ranks, score_bins, soft_targets

    qids = _teacher_qids(queries, run, teacher, qids)
    rng = random.Random(seed)
    rows = []
    for qid in qids:
        ranking = _teacher_ranking(qid, run[qid].docids[:depth], teacher)
        if len(ranking) < 2:
            continue
        target, bins, grades = soft_targets(ranking), score_bins(ranking), grades_from_ranks(ranking)
        top = ranking.docids[:n_top]
        rest = ranking.docids[n_top:]
        picked = [(d, "teacher_top") for d in top] + [(d, "teacher_sample") for d in
                                                       rng.sample(rest, min(len(rest), group_size - len(top)))]
        scores = ranking.scores()
        for docid, kind in picked:
            p = rr.prompt(queries[qid], rr.prepare_doc(corpus.get(docid)))
            grade = int(qrels.get(qid, {}).get(docid, grades[docid])) if qrels else grades[docid]
            rows.append({"qid": qid, "docid": docid, "label": grade, "kind": kind,
                         "teacher_score": float(scores[docid]), "target": float(target[docid]),
                         "target_bin": int(bins[docid]), "prompt": _messages(p), "assistant_prefix": p.assistant_prefix,
                         "completion": (queries[qid].text if method == "qlm"  # the continuation QLM scores
                                        else _soft_completion(method, target[docid], bins[docid]))})
    return to_dataset(rows)


def _soft_completion(method: str, target: float, bin_: int) -> str:
    if method == "yesno":
        return "Yes" if target >= 0.5 else "No"
    if method == "prorank":
        return "1" if target >= 0.5 else "0"
    if method == "score10":
        return f"{bin_}</answer>"
    if method == "erank":
        return f"<think> </think><answer>{bin_}</answer>"
    raise RankstackError(f"unknown pointwise method {method!r}")


def _teacher_qids(queries, run: Run, teacher: Run, qids) -> list[str]:
    """The queries a teacher-driven builder uses: those of ``qids`` (default: the run's) that the
    teacher ranks; a teacher sharing no query with them is an error."""
    qids = list(qids) if qids is not None else list(run)
    require_text_and_candidates(queries, run, qids)
    have = [q for q in qids if q in teacher]
    if not have:
        raise RankstackError(f"the teacher run ranks none of the {len(qids)} queries (teacher qids e.g. "
                             f"{sorted(teacher)[:3]}, queries e.g. {qids[:3]})")
    if len(have) < len(qids):
        log.warning("the teacher run ranks %d of %d queries; the others are left out", len(have), len(qids))
    return have


def _teacher_ranking(qid: str, docids: Sequence[str], teacher: Run):
    """The teacher's ranking of exactly ``docids`` (a candidate it does not score raises, naming it)."""
    from rankstack.training.teacher import MissingTeacherScoreError
    from rankstack.types import Ranking

    have = teacher[qid].scores()
    for d in docids:
        if d not in have:
            raise MissingTeacherScoreError(qid, d, repr(teacher.name))
    return Ranking.from_scores(qid, [(d, have[d]) for d in docids])


def _max_grade(qrels: Qrels) -> int:
    return max((g for j in qrels.values() for g in j.values()), default=1)


def _pair_rows(rr, queries, qrels, run, corpus, qids, rng: random.Random, **sampling):
    """One row per sampled (query, candidate) pair, rendered by the pointwise-style reranker ``rr``:
    qid, docid, label (grade), kind, prompt, assistant_prefix."""
    qids = check_inputs(queries, qrels, run, qids)
    pool = candidate_pool(run, sampling.get("depth", 100))
    for qid in qids:
        for docid, grade, kind in sample_candidates(qid, qrels, run, corpus, rng, pool=pool, **sampling):
            p = rr.prompt(queries[qid], rr.prepare_doc(corpus.get(docid)))
            yield {"qid": qid, "docid": docid, "label": int(grade), "kind": kind, "prompt": _messages(p),
                   "assistant_prefix": p.assistant_prefix}


# --- windows: listwise, FIRST ------------------------------------------------------------------


def ideal_permutation(grades: Sequence[int]) -> list[int]:
    """0-based positions by grade, descending; ties keep first-stage (window) order."""
    return sorted(range(len(grades)), key=lambda j: -grades[j])


def _windows(ranking_docids: list[str], depth: int, window: int, step: int) -> list[tuple[int, int]]:
    from rankstack.rerankers.window import window_schedule

    return [(s, e) for s, e in window_schedule(min(depth, len(ranking_docids)), window, step) if e - s > 1]


def window_examples(queries: Mapping[str, Query], qrels: Qrels, run: Run, corpus: DocStore, *,
                    paradigm: str = "listwise", qids: Sequence[str] | None = None, backend=None, reranker=None,
                    window: int = 20, step: int = 10, depth: int = 100, skip_uniform: bool = True,
                    shuffle: bool = False, seed: int = 0, teacher: Run | None = None, **reranker_options):
    """One example per sliding window of each query's top ``depth`` (the inference schedule).

    Target: the ideal permutation of the window by grade, ties by first-stage rank, written as
    ``[2] > [1] > ...`` (``[B] > [A]`` for FIRST / ``ids="alpha"``); ReasonRank's prompt wraps it
    in ``<think> </think> <answer>...</answer>`` (no teacher reasoning [DEFAULT]).
    ``shuffle=True`` shows each window's passages in a seeded random order (the target follows).
    Windows whose grades are all equal teach nothing and are skipped (``skip_uniform``).
    Columns: qid, docids, grades, teacher (1-based ideal order), prompt, assistant_prefix, completion.

    With ``teacher=`` (a teacher's run over the candidates; qrels may be ``None``) the target of
    each window is the teacher's permutation of it (RankGPT / RankZephyr / FIRST distillation);
    ``grades`` then hold grades derived from the teacher's ranks over the query's whole list.
    A window candidate the teacher does not score raises, naming the docid.
    """
    from rankstack.rerankers.prompts.listwise import clean_passage, identifier

    if paradigm == "first":
        from rankstack.rerankers.first import FirstReranker

        rr = reranker or FirstReranker(backend, window=window, step=step, cache=False, progress=False,
                                       **reranker_options)
    elif paradigm == "listwise":
        from rankstack.rerankers.listwise import ListwiseReranker

        rr = reranker or ListwiseReranker(backend, window=window, step=step, cache=False, progress=False,
                                          **reranker_options)
    else:
        raise RankstackError(f"window examples are for 'listwise' or 'first', not {paradigm!r}")
    ids = getattr(rr, "ids", "numeric")
    reasoning = getattr(rr, "reasoning", False)
    if teacher is not None:
        from rankstack.training.teacher import grades_from_ranks

        qids = _teacher_qids(queries, run, teacher, qids)
    else:
        qids = check_inputs(queries, qrels, run, qids)
    rng = random.Random(seed)
    stats: Counter = Counter()
    rows = []
    for qid in qids:
        docids = run[qid].docids
        if teacher is not None:
            ranking = _teacher_ranking(qid, docids[:depth], teacher)
            judged, tscore = grades_from_ranks(ranking), ranking.scores()
        else:
            judged, tscore = qrels.get(qid, {}), None
        for s, e in _windows(docids, depth, window, step):
            win = docids[s:e]
            if shuffle:
                win = list(win)
                rng.shuffle(win)
            grades = [int(judged.get(d, 0)) for d in win]
            if tscore is None and skip_uniform and len(set(grades)) < 2:
                continue
            docs = [rr.prepare_doc(corpus.get(d)) for d in win]
            passages = [clean_passage(d.text, ids) for d in docs]
            prompt = rr.fit_prompt(queries[qid], passages, stats)
            order = (sorted(range(len(win)), key=lambda j: -tscore[win[j]]) if tscore is not None
                     else ideal_permutation(grades))
            perm = " > ".join(f"[{identifier(j, ids)}]" for j in order)
            target = f"<think> </think> <answer>{perm}</answer>" if reasoning else perm
            rows.append({"qid": qid, "docids": list(win), "grades": grades, "teacher": [j + 1 for j in order],
                         "prompt": _messages(prompt), "assistant_prefix": "", "completion": target})
    return to_dataset(rows)


def listwise_examples(queries, qrels, run, corpus, **kw):
    """:func:`window_examples` for the generative listwise reranker (``prompt="rankzephyr"|"reasonrank"``)."""
    return window_examples(queries, qrels, run, corpus, paradigm="listwise", **kw)


def first_examples(queries, qrels, run, corpus, **kw):
    """:func:`window_examples` for FIRST (letters; target ``[B] > [A] > ...`` for the combined loss)."""
    return window_examples(queries, qrels, run, corpus, paradigm="first", **kw)


def _teacher_grades(qrels: Qrels | None, teacher: Run | None, positive_min: int) -> tuple[Qrels, int]:
    """Builders that read grades (setwise, groupwise, rubric) take a teacher as grades derived from
    its ranks (:func:`rankstack.training.teacher.teacher_qrels`: rank 1 -> 3, 2-3 -> 2, 4-10 -> 1);
    the GRPO rewards then read those grades as they read human ones."""
    if teacher is None:
        if qrels is None:
            raise RankstackError("give qrels or teacher=")
        return qrels, positive_min
    from rankstack.training.teacher import teacher_qrels

    if not len(teacher):
        raise RankstackError("the teacher run is empty")
    return teacher_qrels(teacher), max(positive_min, 1)


# --- sets: setwise (Rank-R1) --------------------------------------------------------------------


def candidate_sets(qid: str, qrels: Qrels, run: Run, rng: random.Random, size: int, depth: int,
                   n_sets: int, positive_min: int = 1) -> list[list[str]]:
    """``n_sets`` seeded random sets of ``size`` candidates from the run's top ``depth``, each with
    at least one document graded >= ``positive_min`` and not all grades equal."""
    ranked = run[qid].docids[:depth]
    judged = qrels.get(qid, {})
    pos = [d for d in ranked if judged.get(d, 0) >= positive_min]
    if not pos or len(ranked) < size:
        return []
    out = []
    for _ in range(n_sets * 4):
        if len(out) >= n_sets:
            break
        first = rng.choice(pos)
        rest = rng.sample([d for d in ranked if d != first], size - 1)
        s = [first] + rest
        rng.shuffle(s)  # Rank-R1 shuffles documents before labelling
        if len({judged.get(d, 0) for d in s}) > 1:
            out.append(s)
    return out


def _set_rows(rr, queries, qrels, run, corpus, qids, size, n_sets, depth, positive_min, seed):
    """(qid, docids, grades, prompt) for each seeded candidate set, rendered by the reranker ``rr``."""
    qids = check_inputs(queries, qrels, run, qids)
    rng = random.Random(seed)
    for qid in qids:
        judged = qrels.get(qid, {})
        for s in candidate_sets(qid, qrels, run, rng, size, depth, n_sets, positive_min):
            docs = [rr.prepare_doc(corpus.get(d)) for d in s]
            yield qid, s, [int(judged.get(d, 0)) for d in s], rr.prompt(queries[qid], docs)


def setwise_examples(queries: Mapping[str, Query], qrels: Qrels, run: Run, corpus: DocStore, *,
                     qids: Sequence[str] | None = None, backend=None, reranker=None, size: int = 5,
                     n_sets: int = 4, depth: int = 20, positive_min: int = 1, seed: int = 0, teacher: Run | None = None, **reranker_options):
    """Sets of ``size`` shuffled candidates; target: the label of the most relevant one (Rank-R1).

    Columns: qid, docids, grades, gold (1-based labels of every top-graded doc), prompt,
    assistant_prefix, completion (``<think> </think> <answer>[k]</answer>``; with the reranker's
    ``reasoning=False`` prefix, which opens ``<answer>[``, only ``k]</answer>``).
    """
    from rankstack.rerankers.setwise import SetwiseReranker

    rr = reranker or SetwiseReranker(backend, cache=False, progress=False, **reranker_options)
    qrels, positive_min = _teacher_grades(qrels, teacher, positive_min)
    rows = []
    for qid, s, grades, p in _set_rows(rr, queries, qrels, run, corpus, qids, size, n_sets, depth, positive_min,
                                       seed):
        gold = [j + 1 for j, g in enumerate(grades) if g == max(grades)]
        # the reasoning=False prefix already opens the answer (``<answer>[``): the target is the rest
        target = (f"{gold[0]}]</answer>" if p.assistant_prefix.endswith("[")
                  else f"<think> </think> <answer>[{gold[0]}]</answer>")
        rows.append({"qid": qid, "docids": s, "grades": grades, "gold": gold, "prompt": _messages(p),
                     "assistant_prefix": p.assistant_prefix, "completion": target})
    return to_dataset(rows)


# --- groups: groupwise (GroupRank), rubric (Retro*) -----------------------------------------------


def groupwise_examples(queries: Mapping[str, Query], qrels: Qrels, run: Run, corpus: DocStore, *,
                       qids: Sequence[str] | None = None, backend=None, reranker=None, size: int = 10,
                       n_groups: int = 2, depth: int = 100, positive_min: int = 1, seed: int = 0,
                       teacher: Run | None = None, **reranker_options):
    """Groups of ``size`` shuffled candidates; target: GroupRank's JSON of 0-10 gold scores
    (round(10 * min-max(grade)) **[DEFAULT]**) inside ``<reason> </reason><answer>``.

    Columns: qid, docids, grades, gold_scores, prompt, assistant_prefix, completion.
    """
    import json

    from rankstack.rerankers.groupwise import GroupwiseReranker
    from rankstack.training.rewards import gold_scores_from_grades

    rr = reranker or GroupwiseReranker(backend, cache=False, progress=False, **reranker_options)
    qrels, positive_min = _teacher_grades(qrels, teacher, positive_min)
    rows = []
    for qid, s, grades, p in _set_rows(rr, queries, qrels, run, corpus, qids, size, n_groups, depth, positive_min,
                                       seed):
        gold = gold_scores_from_grades(grades)
        obj = json.dumps({f"[{j + 1}]": g for j, g in enumerate(gold)})
        rows.append({"qid": qid, "docids": s, "grades": grades, "gold_scores": gold, "prompt": _messages(p),
                     "assistant_prefix": p.assistant_prefix,
                     "completion": f"<reason> </reason>\n<answer>\n```json\n{obj}\n```\n</answer>"})
    return to_dataset(rows)


def rubric_examples(queries: Mapping[str, Query], qrels: Qrels, run: Run, corpus: DocStore, *,
                    qids: Sequence[str] | None = None, backend=None, reranker=None, n_pos: int = 2,
                    n_hard: int = 4, n_random: int = 2, depth: int = 100, hard_depth: int = 30,
                    positive_min: int = 1, seed: int = 0, teacher: Run | None = None, **reranker_options):
    """Retro* (query, document) examples; target ``<score>\\n{s}\\n</score>`` with s =
    round(100 * grade / max_grade) **[DEFAULT]**. Columns as :func:`pointwise_examples`."""
    from rankstack.rerankers import rubric as RB

    rr = reranker or RB.RubricReranker(backend, cache=False, progress=False, **reranker_options)
    qrels, positive_min = _teacher_grades(qrels, teacher, positive_min)
    max_grade = _max_grade(qrels)
    rng = random.Random(seed)
    rows = []
    for row in _pair_rows(rr, queries, qrels, run, corpus, qids, rng, n_pos=n_pos, n_hard=n_hard, n_random=n_random,
                          depth=depth, hard_depth=hard_depth, positive_min=positive_min):
        s = round(100 * max(0, row["label"]) / max_grade) if max_grade else 0
        rows.append({**row, "teacher_score": s, "completion": f"<score>\n{s}\n</score>"})
    rng.shuffle(rows)
    return to_dataset(rows)


BUILDERS = {
    "pointwise": pointwise_examples,
    "listwise": listwise_examples,
    "first": first_examples,
    "setwise": setwise_examples,
    "groupwise": groupwise_examples,
    "rubric": rubric_examples,
}


def build_examples(paradigm: str, queries, qrels, run, corpus, **kw):
    """``BUILDERS[paradigm](...)``: ``pointwise`` (``method=yesno|score10|erank|prorank``), ``listwise``
    (``prompt=rankzephyr|reasonrank``), ``first``, ``setwise``, ``groupwise``, ``rubric``."""
    try:
        fn = BUILDERS[paradigm]
    except KeyError:
        raise RankstackError(f"unknown paradigm {paradigm!r}; one of {', '.join(BUILDERS)}") from None
    return fn(queries, qrels, run, corpus, **kw)

