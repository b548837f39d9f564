"""Named datasets: ``dl19``, ``vaswani``, ``cacm``.

Where the files are looked for, in order:
1. ``$RANKSTACK_DATA/<name>/`` (the layout of the project's shared data folder);
2. the download cache ``$RANKSTACK_CACHE/datasets/<name>/`` (default ``~/.cache/rankstack``);
3. online: files copied from a mirror with the same layout (``$RANKSTACK_DATA_MIRROR`` or
   ``mirror=``, any URL urllib reads: https://, file://), or, with ``ir_datasets`` installed,
   the collection's official source through ir_datasets.
Offline with no local copy, :class:`DatasetNotFoundError` says what to set.

Every command's input (a run, qrels, topics, a corpus) is a file or one of these names:
:func:`check_input` says in one line what is wrong with one (no such file, a folder, not
readable, an unknown name with the known ones listed) before anything slow starts.

``RANKSTACK_QUICK=1`` (for trying a snippet or a command in seconds, and the docs' snippet
tests): every named dataset loads as a miniature: its first 2 judged queries, their qrels, the
first-stage run's top 5 for them, and a corpus of those passages, the queries' judged passages
and the collection's first 100 documents. Files given by path are read as they are.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import urllib.request
from collections.abc import Iterable
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

    def subset(self, queries: int | Iterable[str]) -> Dataset:
        """The same dataset for fewer queries: the first ``queries`` judged ones (an int) or the
        qids given. Queries, qrels and the first-stage run are cut; the corpus is shared.

            ds = rankstack.load_dataset("dl19").subset(5)     # 5 queries, their BM25 top-100
        """
        if isinstance(queries, int):
            qids = list(self.judged_queries)[: max(0, queries)]
        else:
            qids = [str(q) for q in queries]
            unknown = [q for q in qids if q not in self.queries]
            if unknown:
                raise RankstackError(f"dataset {self.name!r} has no query {unknown[0]!r}")
        keep = set(qids)
        run = Run({q: r for q, r in self.run.items() if q in keep}, name=self.run.name) if self.run else None
        return Dataset(self.name, {q: self.queries[q] for q in qids}, {q: self.qrels[q] for q in qids if q in self.qrels},
                       self.corpus_path, run, self.rel, self.corpus_format, self._corpus)


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
        raise RankstackError(f"unknown dataset {name!r}{_did_you_mean(name)}; known: {', '.join(SPECS)}") from None


def _did_you_mean(arg: str) -> str:
    close = difflib.get_close_matches(str(arg), list(SPECS), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _no_copy(name: str) -> DatasetNotFoundError:
    spec = _spec(name)
    return DatasetNotFoundError(
        f"dataset {name!r}: no local copy and no mirror. Set RANKSTACK_DATA to a folder holding {name}/"
        f" ({', '.join(spec.files)}), or RANKSTACK_DATA_MIRROR to a URL with that layout"
        + (", or install ir_datasets (online) and call load_dataset(..., source='ir_datasets')" if spec.ir_datasets_id else ""))


def is_dataset_name(arg) -> bool:
    """``arg`` names a dataset (and no file of that name is in the way)."""
    return isinstance(arg, str) and arg in SPECS and not os.path.exists(arg)


#: what each kind of input is called in messages, and whether a folder can be one
_KINDS = {"run": ("run", False), "qrels": ("qrels", False), "topics": ("topics", False),
          "corpus": ("corpus", True), "file": ("input", False)}


def check_input(arg, kind: str = "file") -> None:
    """Fail now, in one line, when ``arg`` cannot be read as ``kind`` (run, qrels, topics,
    corpus): neither an existing file (a corpus may be a folder) nor a known dataset name, a
    folder where a file belongs, unreadable, or a dataset without a local copy or mirror."""
    what, folder_ok = _KINDS[kind]
    if is_dataset_name(arg):
        spec = _spec(arg)
        if kind == "run" and spec.run is None:
            raise RankstackError(f"dataset {arg!r} ships no first-stage run; retrieve one (rankstack retrieve)")
        if dataset_dir(arg) is None and not os.environ.get("RANKSTACK_DATA_MIRROR"):
            raise _no_copy(arg)
        return
    p = Path(arg)
    if not p.exists():
        raise RankstackError(f"{what} {str(arg)!r}: no such file, and not a dataset name{_did_you_mean(arg)} "
                             f"(known: {', '.join(SPECS)})")
    if p.is_dir() and not folder_ok:
        raise RankstackError(f"{what} {arg}: is a folder, not a {what} file")
    if not os.access(p, os.R_OK):
        raise RankstackError(f"{what} {arg}: permission denied")


def check_inputs(**inputs) -> None:
    """:func:`check_input` for each ``kind=arg`` given (None skipped), e.g.
    ``check_inputs(run=args.run, topics=args.queries, corpus=args.corpus, qrels=args.qrels)``."""
    for kind, arg in inputs.items():
        for one in arg if isinstance(arg, (list, tuple)) else [arg]:
            if one is not None:
                check_input(one, kind)


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
        raise _no_copy(name)
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

    With ``RANKSTACK_QUICK=1`` set, a miniature of it (the module docstring).

    Returns:
        The :class:`Dataset`: ``queries``, ``qrels``, ``corpus`` (a ``DocStore``, opened on first
        use), ``run`` (the shipped first-stage run, if any), ``rel`` (the binary-relevance cut)
        and ``judged_queries``.

    Raises:
        DatasetNotFoundError: no local copy and no mirror (the message says what to set).
    """
    spec = _spec(name)
    if source == "ir_datasets":
        return _quick(_from_ir_datasets(spec))
    d = dataset_dir(name) if source in ("auto", "local") else None
    if d is None:
        if source == "local":
            raise DatasetNotFoundError(f"dataset {name!r} not found under RANKSTACK_DATA={os.environ.get('RANKSTACK_DATA')}")
        d = download(name, mirror)
    queries = read_topics(d / spec.queries, spec.topic_format)
    qrels = read_qrels(d / spec.qrels)
    run = read_run(d / spec.run) if spec.run else None
    return _quick(Dataset(name, queries, qrels, d / spec.corpus, run, spec.rel, spec.corpus_format))


#: RANKSTACK_QUICK's miniature: judged queries, first-stage depth, extra corpus documents
QUICK_QUERIES, QUICK_DEPTH, QUICK_DOCS = 2, 5, 100


def quick_mode() -> bool:
    """``RANKSTACK_QUICK`` is set (to anything but empty or 0)."""
    return os.environ.get("RANKSTACK_QUICK", "") not in ("", "0")


def _quick(ds: Dataset) -> Dataset:
    if not quick_mode():
        return ds
    small = ds.subset(QUICK_QUERIES)
    if small.run is not None:
        small.run = small.run.top(QUICK_DEPTH)
    keep = {d for r in (small.run or {}).values() for d in r.docids} | {d for j in small.qrels.values() for d in j}
    docs = [doc for i, doc in enumerate(ds.corpus) if doc.docid in keep or i < QUICK_DOCS]
    small._corpus = InMemoryDocStore(docs, source=f"{ds.name} (RANKSTACK_QUICK)")
    log.warning("RANKSTACK_QUICK: dataset %s cut to %d queries, top %d, %d documents", ds.name, len(small.queries),
                QUICK_DEPTH, len(docs))
    return small


def resolve_queries(arg: str) -> dict[str, Query]:
    """Query texts from a topics file or a dataset name.

    Args:
        arg: a topics file path (TSV, TREC, JSON) or a dataset name.

    Returns:
        ``{qid: Query}``.
    """
    check_input(arg, "topics")
    return load_dataset(arg).queries if is_dataset_name(arg) else read_topics(arg)


def resolve_corpus(arg: str, store: str = "auto") -> DocStore:
    """A corpus from a file or a dataset name.

    Args:
        arg: a corpus file (JSONL, TSV, TREC SGML, Pyserini JSON, HTML folder) or a dataset name.
        store: ``auto`` (memory when it fits, else SQLite), ``memory`` or ``sqlite``.

    Returns:
        The :class:`DocStore`.
    """
    check_input(arg, "corpus")
    return load_dataset(arg).corpus if is_dataset_name(arg) else load_corpus(arg, store=store)


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
    with :func:`rankstack.data.trec.iter_run`; with ``RANKSTACK_QUICK``, the miniature's run,
    written to the cache).

    Args:
        arg: a TREC run file or a dataset name.

    Returns:
        The file's path.

    Raises:
        RankstackError: a dataset that ships no run, or a missing file.
    """
    check_input(arg, "run")
    if not is_dataset_name(arg):
        return Path(arg)
    spec = _spec(arg)
    if spec.run is None:
        raise RankstackError(f"dataset {arg!r} ships no first-stage run; retrieve one (rankstack retrieve)")
    if quick_mode():
        from rankstack.data.trec import write_run

        path = cache_root() / "quick" / f"{arg}.trec"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_run(load_dataset(arg).run, path)
        return path
    d = dataset_dir(arg) or download(arg)
    return d / spec.run


def resolve_qrels(arg: str) -> Qrels:
    """Judgements from a qrels file or a dataset name.

    Args:
        arg: a TREC qrels file or a dataset name.

    Returns:
        ``{qid: {docid: grade}}``.
    """
    check_input(arg, "qrels")
    return load_dataset(arg).qrels if is_dataset_name(arg) else read_qrels(arg)


def dataset_rel(arg) -> int | None:
    """The relevance level of binary measures for a qrels argument naming a dataset (None for a file)."""
    return SPECS[arg].rel if is_dataset_name(arg) else None
