"""What every training-example builder shares: the seeded query split, input checks, candidate
sampling, and rows -> a Hugging Face ``Dataset`` (:mod:`rankstack.training.examples` builds the
paradigms' examples with them)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from rankstack.data.corpus import DocStore
from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt
from rankstack.types import Qrels, Query, Run


def split_queries(qids: Iterable[str], train_fraction: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    """A seeded split by query: (train qids, held-out qids); the same seed gives the same split."""
    if not 0.0 < train_fraction < 1.0:
        raise RankstackError(f"train_fraction must be in (0, 1), got {train_fraction}")
    ids = sorted(set(qids))
    random.Random(seed).shuffle(ids)
    n = max(1, min(len(ids) - 1, round(len(ids) * train_fraction))) if len(ids) > 1 else len(ids)
    return sorted(ids[:n]), sorted(ids[n:])


def require_text_and_candidates(queries: Mapping[str, Query], run: Run, qids: Sequence[str]) -> None:
    """Every query of ``qids`` has its text and its first-stage candidates, or an error names one."""
    missing = [q for q in qids if q not in queries]
    if missing:
        raise RankstackError(f"{len(missing)} queries have no text (e.g. {missing[0]!r})")
    missing = [q for q in qids if q not in run]
    if missing:
        raise RankstackError(f"{len(missing)} queries are not in the first-stage run (e.g. {missing[0]!r})")


def check_inputs(queries: Mapping[str, Query], qrels: Qrels, run: Run, qids: Sequence[str] | None) -> list[str]:
    """The queries a qrels-driven builder uses.

    Args:
        queries: query texts.
        qrels: the judgements.
        run: the first-stage run.
        qids: the queries asked for (None: the run's judged queries).

    Returns:
        The qids, each with text and candidates.

    Raises:
        RankstackError: a query without text or candidates, or none at all.
    """
    qids = list(qids) if qids is not None else [q for q in run if q in qrels]
    require_text_and_candidates(queries, run, qids)
    if not qids:
        raise RankstackError("no queries to build examples from (none of the run's queries has judgements)")
    return qids


def sample_candidates(qid: str, qrels: Qrels, run: Run, corpus: DocStore | None, rng: random.Random, *,
                      n_pos: int = 2, n_hard: int = 4, n_random: int = 2, depth: int = 100, hard_depth: int = 30,
                      positive_min: int = 1, pool: Sequence[str] = ()) -> list[tuple[str, int, str]]:
    """(docid, grade, kind) with kind ``pos`` / ``hard`` / ``random`` for one query."""
    judged = qrels.get(qid, {})
    ranked = run[qid].docids[:depth]
    pos = [d for d in ranked if judged.get(d, 0) >= positive_min]
    if len(pos) < n_pos and corpus is not None:
        pos += [d for d, g in sorted(judged.items()) if g >= positive_min and d not in set(pos) and d in corpus]
    pos = rng.sample(pos, min(n_pos, len(pos)))
    hard = [d for d in ranked[:hard_depth] if judged.get(d, 0) < positive_min]
    hard = rng.sample(hard, min(n_hard, len(hard)))
    taken = set(pos) | set(hard) | set(ranked)
    others = [d for d in pool if d not in taken and judged.get(d, 0) < positive_min]
    rand = rng.sample(others, min(n_random, len(others)))
    return ([(d, judged.get(d, 0), "pos") for d in pos] + [(d, judged.get(d, 0), "hard") for d in hard]
            + [(d, judged.get(d, 0), "random") for d in rand])


def candidate_pool(run: Run, depth: int) -> list[str]:
    """Every docid in the run's top ``depth`` of any query, first seen first (random negatives come from here)."""
    seen: dict[str, None] = {}
    for r in run.values():
        for d in r.docids[:depth]:
            seen.setdefault(d)
    return list(seen)


def prompt_from_row(row: Mapping) -> Prompt:
    """The :class:`Prompt` a dataset row holds (``prompt`` messages + ``assistant_prefix``)."""
    return Prompt(tuple((m["role"], m["content"]) for m in row["prompt"]), row.get("assistant_prefix", "") or "")


def to_dataset(rows: list[dict]):
    """Rows as a Hugging Face ``datasets.Dataset``.

    Args:
        rows: one dict per example.

    Returns:
        The dataset.

    Raises:
        RankstackError: no rows.
    """
    from datasets import Dataset

    if not rows:
        raise RankstackError("no examples built (no judged candidates in the run for these queries?)")
    return Dataset.from_list(rows)
