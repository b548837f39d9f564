"""Named datasets: ``dl19``, ``vaswani``, ``cacm``.

Where the files are looked for, in order:
1. ``$RANKSTACK_DATA/<name>/`` (the layout of the project's shared data folder);
2. the download cache ``$RANKSTACK_CACHE/datasets/<name>/`` (default ``~/.cache/rankstack``);
3. online: files copied from a mirror with the same layout (``$RANKSTACK_DATA_MIRROR`` or
   ``mirror=``, any URL urllib reads: https://, file://), or, with ``ir_datasets`` installed,
   the collection's official source through ir_datasets.
Offline with no local copy, :class:`DatasetNotFoundError` says what to set.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rankstack.data.corpus import DocStore, InMemoryDocStore, load_corpus
from rankstack.data.trec import read_qrels, read_run, read_topics
from rankstack.errors import DatasetNotFoundError, RankstackError
from rankstack.paths import cache_root, data_root
from rankstack.types import Doc, Qrels, Query, Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    queries: str
    qrels: str
    corpus: str
    run: str | None = None
    topic_format: str | None = None
    corpus_format: str | None = None
    rel: int = 1  # relevance level of binary measures (TREC DL: 2)
    ir_datasets_id: str | None = None
    description: str = ""

    @property
    def files(self) -> list[str]:
        return [f for f in (self.queries, self.qrels, self.corpus, self.run) if f]


SPECS: dict[str, DatasetSpec] = {
    "dl19": DatasetSpec("dl19", "queries.tsv", "qrels.txt", "corpus.jsonl", "bm25.trec", "tsv", "jsonl", rel=2,
                        ir_datasets_id="msmarco-passage/trec-dl-2019/judged",
                        description="TREC DL 2019 passage, 43 queries, BM25 top-100 candidates"),
    "vaswani": DatasetSpec("vaswani", "query-text.trec", "qrels", "doc-text.trec", None, "trec", "trec",
                           ir_datasets_id="vaswani", description="Vaswani/NPL physics abstracts, 93 queries"),
    # the raw HTML that Anserini's CACM regression indexes (corpus.jsonl beside it lost the text after
    # a '<' in ten documents); read as HTML it gives Anserini's tokens, and its BM25 MAP 0.3123
    "cacm": DatasetSpec("cacm", "topics.cacm.txt", "qrels.txt", "cacm.tar.gz", None, "doc", "html",
                        ir_datasets_id=None, description="CACM abstracts (HTML), 64 topics (52 judged)"),
}


@dataclass
class Dataset:
    name: str
    queries: dict[str, Query]
    qrels: Qrels
    corpus_path: Path | None
    run: Run | None = None
    rel: int = 1
    corpus_format: str | None = None
    _corpus: DocStore | None = field(default=None, repr=False)

    @property
    def corpus(self) -> DocStore:
        if self._corpus is None:
            self._corpus = load_corpus(self.corpus_path, self.corpus_format)
        return self._corpus

    @property
    def judged_queries(self) -> dict[str, Query]:
        return {q: v for q, v in self.queries.items() if q in self.qrels}


def dataset_dir(name: str) -> Path | None:
    """The local folder holding every file of a named dataset.

    Args:
        name: a dataset name (``dl19``, ``vaswani``, ``cacm``, ...).

    Returns:
        ``$RANKSTACK_DATA/NAME`` or the cache's copy, whichever is complete; None when neither is.

    Raises:
        RankstackError: an unknown name.
    """
    spec = _spec(name)
    candidates = [r / name for r in (data_root(),) if r] + [cache_root() / "datasets" / name]
    for d in candidates:
        if all((d / f).exists() for f in spec.files):
            return d
    return None


def _spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise RankstackError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}") from None


def download(name: str, mirror: str | None = None, dest: Path | None = None) -> Path:
    """Copy a dataset's files from a mirror URL (``<mirror>/<name>/<file>``) into the cache.

    Args:
        name: the dataset name.
        mirror: the mirror's base URL (default ``$RANKSTACK_DATA_MIRROR``).
        dest: the folder to write (default the cache's ``datasets/NAME``).

    Returns:
        The folder the files are in.

    Raises:
        DatasetNotFoundError: no mirror, or a file that does not download.
    """
    spec = _spec(name)
    mirror = mirror or os.environ.get("RANKSTACK_DATA_MIRROR")
    if not mirror:
        raise DatasetNotFoundError(
            f"dataset {name!r}: no local copy and no mirror. Set RANKSTACK_DATA to a folder holding {name}/"
            f" ({', '.join(spec.files)}), or RANKSTACK_DATA_MIRROR to a URL with that layout"
            + (", or install ir_datasets (online) and call load_dataset(..., source='ir_datasets')" if spec.ir_datasets_id else "")
        )
    dest = dest or cache_root() / "datasets" / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in spec.files:
        url = f"{mirror.rstrip('/')}/{name}/{f}"
        tmp = dest / f"{f}.part"
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as out:
                shutil.copyfileobj(r, out)
        except OSError as e:
            raise DatasetNotFoundError(f"dataset {name!r}: could not download {url}: {e}") from None
        os.replace(tmp, dest / f)
    return dest


def _from_ir_datasets(spec: DatasetSpec) -> Dataset:
    try:
        import ir_datasets
    except ImportError:
        raise DatasetNotFoundError(f"dataset {spec.name!r}: ir_datasets is not installed (pip install ir_datasets)") from None
    try:
        ds = ir_datasets.load(spec.ir_datasets_id)
        queries = {q.query_id: Query(q.query_id, q.text) for q in ds.queries_iter()}
        qrels: Qrels = {}
        for qr in ds.qrels_iter():
            qrels.setdefault(qr.query_id, {})[qr.doc_id] = int(qr.relevance)
        corpus = InMemoryDocStore((Doc(d.doc_id, d.text) for d in ds.docs_iter()), source=spec.ir_datasets_id)
    except Exception as e:  # network failures surface as many exception types
        raise DatasetNotFoundError(f"dataset {spec.name!r}: ir_datasets failed ({e}); offline? set RANKSTACK_DATA") from e
    return Dataset(spec.name, queries, qrels, None, None, spec.rel, None, corpus)


def load_dataset(name: str, source: str = "auto", mirror: str | None = None) -> Dataset:
    """Load a named dataset.

    Args:
        name: ``dl19``, ``dl20``, ``vaswani``, ``cacm``, ... (``rankstack.data.datasets.SPECS``).
        source: ``auto`` (the local copy under ``RANKSTACK_DATA`` or the cache, else the mirror),
            ``local``, ``mirror`` or ``ir_datasets`` (online).
        mirror: the mirror URL (default ``$RANKSTACK_DATA_MIRROR``).

    Returns:
        The :class:`Dataset`: ``queries``, ``qrels``, ``corpus`` (a ``DocStore``, opened on first
        use), ``run`` (the shipped first-stage run, if any), ``rel`` (the binary-relevance cut)
        and ``judged_queries``.

    Raises:
        DatasetNotFoundError: no local copy and no mirror (the message says what to set).
    """
    spec = _spec(name)
    if source == "ir_datasets":
        return _from_ir_datasets(spec)
    d = dataset_dir(name) if source in ("auto", "local") else None
    if d is None:
        if source == "local":
            raise DatasetNotFoundError(f"dataset {name!r} not found under RANKSTACK_DATA={os.environ.get('RANKSTACK_DATA')}")
        d = download(name, mirror)
    queries = read_topics(d / spec.queries, spec.topic_format)
    qrels = read_qrels(d / spec.qrels)
    run = read_run(d / spec.run) if spec.run else None
    return Dataset(name, queries, qrels, d / spec.corpus, run, spec.rel, spec.corpus_format)


def resolve_queries(arg: str) -> dict[str, Query]:
    """Query texts from a topics file or a dataset name.

    Args:
        arg: a topics file path (TSV, TREC, JSON) or a dataset name.

    Returns:
        ``{qid: Query}``.
    """
    return load_dataset(arg).queries if arg in SPECS and not os.path.exists(arg) else read_topics(arg)


def resolve_corpus(arg: str, store: str = "auto") -> DocStore:
    """A corpus from a file or a dataset name.

    Args:
        arg: a corpus file (JSONL, TSV, TREC SGML, Pyserini JSON, HTML folder) or a dataset name.
        store: ``auto`` (memory when it fits, else SQLite), ``memory`` or ``sqlite``.

    Returns:
        The :class:`DocStore`.
    """
    if arg in SPECS and not os.path.exists(arg):
        return load_dataset(arg).corpus
    return load_corpus(arg, store=store)


def resolve_run(arg: str) -> Run:
    """A run read whole from a file or a dataset's first-stage run.

    Args:
        arg: a TREC run file or a dataset name.

    Returns:
        The :class:`Run`.
    """
    return read_run(resolve_run_path(arg))


def resolve_run_path(arg: str) -> Path:
    """A run file path, or the first-stage run file of a named dataset (read it block by block
    with :func:`rankstack.data.trec.iter_run`).

    Args:
        arg: a TREC run file or a dataset name.

    Returns:
        The file's path.

    Raises:
        RankstackError: a dataset that ships no run.
        FileNotFoundError: no such file.
    """
    if arg in SPECS and not os.path.exists(arg):
        spec = _spec(arg)
        if spec.run is None:
            raise RankstackError(f"dataset {arg!r} ships no first-stage run; retrieve one (rankstack retrieve)")
        d = dataset_dir(arg)
        if d is None:
            d = download(arg)
        return d / spec.run
    if not os.path.exists(arg):
        raise FileNotFoundError(f"run file not found: {arg}")
    return Path(arg)


def resolve_qrels(arg: str) -> Qrels:
    """Judgements from a qrels file or a dataset name.

    Args:
        arg: a TREC qrels file or a dataset name.

    Returns:
        ``{qid: {docid: grade}}``.
    """
    return load_dataset(arg).qrels if arg in SPECS and not os.path.exists(arg) else read_qrels(arg)
