"""``rankstack report``: one self-contained HTML page comparing runs.

    html = rankstack.report({"BM25": bm25, "pointwise": run}, ds.qrels, queries=ds.queries,
                            corpus=ds.corpus, measures=["nDCG@10"])

The page: the summary table of ``rankstack eval`` (same numbers and marks, baseline first),
per-query delta bars and a baseline-vs-run scatter for each run, each query's top passages with
grades and the rank change of every judged relevant passage, and what each run cost (from its
``RUN.meta.json``). ``rankstack.report`` is this package and, called, :func:`report`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence

from rankstack.data.corpus import DocStore
from rankstack.types import Qrels, Query

__all__ = ["report", "write_report"]


def report(runs, qrels: Qrels | str, queries: Mapping[str, Query] | str | None = None,
           corpus: DocStore | str | None = None, measures: Sequence[str] | str = ("nDCG@10",),
           baseline: str | None = None, rel: int | None = None, top: int = 10, words: int = 12,
           title: str | None = None, missing_as_zero: bool = False) -> str:
    """The report page as an HTML string.

    Args:
        runs: ``{name: Run or path}``, or a list of Runs, paths or ``NAME=PATH`` strings (a run
            file's metadata is read from ``PATH.meta.json`` when present; a Run's from ``run.metadata``).
        qrels: judgements, a qrels file, or a dataset name (``dl19``).
        queries: query texts, a topics file or a dataset name (None: queries show by id).
        corpus: a DocStore, a corpus file or a dataset name (None: passages show by docid).
        measures: measure names.
        baseline: the run the others are tested against (default: the first).
        rel: the relevance level of binary measures (default: the dataset's when ``qrels`` names one).
        top: passages listed per query and run.
        words: words of each passage shown.
        title: the page title.
        missing_as_zero: score every judged query, those a run lacks as 0 (default: the judged
            queries every run holds).

    Returns:
        The self-contained HTML page.

    Raises:
        RankstackError: ``top`` <= 0 or ``words`` < 0, or unreadable inputs.
    """
    from rankstack.data.datasets import dataset_rel, resolve_corpus, resolve_qrels, resolve_queries
    from rankstack.errors import RankstackError
    from rankstack.report.data import gather
    from rankstack.report.html import render

    if top <= 0 or words < 0:
        raise RankstackError(f"top must be > 0 and words >= 0 (got top={top}, words={words})")
    if isinstance(qrels, str):
        if rel is None:
            rel = dataset_rel(qrels)
        qrels = resolve_qrels(qrels)
    if isinstance(queries, str):
        queries = resolve_queries(queries)
    if isinstance(corpus, str):
        corpus = resolve_corpus(corpus)
    data = gather(runs, qrels, queries, corpus, measures, baseline, rel, missing_as_zero)
    return render(data, title=title, top=top, words=words)


def write_report(path, *args, **kwargs) -> int:
    """:func:`report` written to a file.

    Args:
        path: the HTML file to write (folders made).
        *args: :func:`report`'s arguments.
        **kwargs: :func:`report`'s keywords.

    Returns:
        The file's size in bytes.
    """
    from pathlib import Path

    html = report(*args, **kwargs)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out.stat().st_size


class _CallableModule(types.ModuleType):
    """``rankstack.report`` names this package once it is imported; calling it calls :func:`report`."""

    def __call__(self, *args, **kwargs) -> str:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
