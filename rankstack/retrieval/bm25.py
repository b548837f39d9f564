"""BM25 with bm25s: the embedded default first stage (no JVM).

Scoring is bm25s' ``method="lucene"`` (Lucene's BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
no (k1 + 1) factor), with Anserini's defaults k1=0.9, b=0.4. Text analysis approximates
Anserini's default English analyzer: lowercase, tokens of word characters (single letters kept,
as Lucene's StandardTokenizer does), Lucene's 33 English stopwords (bm25s' ``"en"`` list), and
the original Porter stemmer (PyStemmer's ``"porter"``, Lucene's PorterStemFilter).

    r = BM25Retriever.from_corpus(load_dataset("cacm").corpus)
    run = r.retrieve(queries, k=1000)
    r.save("indexes/cacm.bm25s"); r = BM25Retriever.load("indexes/cacm.bm25s")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import RankstackError
from rankstack.retrieval.base import (QueriesLike, Retriever, as_query_list, check_k, collect_docs, read_manifest,
                                      write_manifest)
from rankstack.types import Ranking, Run

log = logging.getLogger(__name__)

#: Close to Lucene's StandardTokenizer + EnglishPossessiveFilter: one-character tokens kept
#: (bm25s' default ``\w\w+`` drops them), ``e.g``/``3.14``/``don't`` kept whole, a possessive
#: ``'s`` dropped ("page's" -> "page"). On CACM it gives P@30 equal to Lucene's.
TOKEN_PATTERN = r"(?u)\w+(?:\.\w+)*(?=['’]s\b)|(?<!['’])\b\w+(?:[.'’]\w+)*"
STEMMERS = ("porter", "english", None)


def _stemmer(name: str | None):
    if name is None:
        return None
    try:
        import Stemmer
    except ImportError:
        raise RankstackError("stemming needs PyStemmer: pip install PyStemmer (or pass stemmer=None)") from None
    try:
        return Stemmer.Stemmer(name).stemWords
    except KeyError:
        raise RankstackError(f"unknown stemmer {name!r}; PyStemmer algorithms: {', '.join(Stemmer.algorithms())}") from None


class BM25Retriever(Retriever):
    """BM25 over an in-memory bm25s index. Build with :meth:`from_corpus`, reopen with :meth:`load`.

    Args:
        model: the bm25s index (``bm25s.BM25``).
        docids: the docid of each indexed row.
        k1: BM25's term saturation (Anserini's 0.9).
        b: BM25's length normalisation (Anserini's 0.4).
        stemmer: ``porter`` (PyStemmer) or None.
        stopwords: ``en``, a list, or None.
        token_pattern: the regex that cuts text into terms.
        threads: bm25s retrieval threads.
        show_progress: progress bars.
    """

    backend = "bm25s"
    format_version = 1

    def __init__(self, model, docids: list[str], k1: float = 0.9, b: float = 0.4, stemmer: str | None = "porter",
                 stopwords: str | list[str] | None = "en", token_pattern: str = TOKEN_PATTERN,
                 threads: int | None = None, show_progress: bool = True):
        self.model = model
        self.docids = docids
        self.k1, self.b = float(k1), float(b)
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self.token_pattern = token_pattern
        self.threads = threads
        self.show_progress = show_progress
        self._stem = _stemmer(stemmer)

    def params(self) -> dict[str, Any]:
        """The options that define the index and its scores.

        Returns:
            ``{option: value}`` (written to the index manifest).
        """
        return {"k1": self.k1, "b": self.b, "method": "lucene", "stemmer": self.stemmer_name,
                "stopwords": self.stopwords, "token_pattern": self.token_pattern}

    # --- analysis ----------------------------------------------------------------
    def tokenize(self, texts: list[str], show_progress: bool = False) -> list[list[str]]:
        """Terms of each text as the index analyses them (lower case, stopwords, stemmer).

        Args:
            texts: the texts.
            show_progress: a progress bar.

        Returns:
            One term list per text.
        """
        import bm25s

        return bm25s.tokenize(texts, lower=True, token_pattern=self.token_pattern, stopwords=self.stopwords or None,
                              stemmer=self._stem, return_ids=False, show_progress=show_progress)

    # --- building ----------------------------------------------------------------
    @classmethod
    def from_corpus(cls, corpus, k1: float = 0.9, b: float = 0.4, stemmer: str | None = "porter",
                    stopwords: str | list[str] | None = "en", token_pattern: str = TOKEN_PATTERN,
                    show_progress: bool = True, **kw) -> BM25Retriever:
        """Index a corpus; each document as ``Doc.full_text`` (title and body).

        Args:
            corpus: a DocStore, an iterable of :class:`Doc`, or a corpus file (any supported format).
            k1: BM25's term saturation.
            b: BM25's length normalisation.
            stemmer: ``porter`` or None.
            stopwords: ``en``, a list, or None.
            token_pattern: the term regex.
            show_progress: progress bars.
            **kw: more :class:`BM25Retriever` options (``threads``).

        Returns:
            The retriever.

        Raises:
            RankstackError: an empty corpus or a docid twice.
        """
        import bm25s

        if stemmer not in STEMMERS and not isinstance(stemmer, str):
            raise RankstackError(f"stemmer must be a PyStemmer algorithm name or None, got {stemmer!r}")
        docs = collect_docs(corpus)
        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        self = cls(model, [d.docid for d in docs], k1, b, stemmer, stopwords, token_pattern, show_progress=show_progress, **kw)
        log.info("bm25s: tokenizing and indexing %d documents", len(docs))
        tokens = self.tokenize([d.full_text for d in docs], show_progress=show_progress)
        model.index(tokens, show_progress=show_progress)
        return self

    # --- searching ---------------------------------------------------------------
    def retrieve(self, queries: QueriesLike, k: int = 1000) -> Run:
        """Top-``k`` per query, batched over all queries. Documents matching no query term are left
        out (as Lucene does), so a ranking may hold fewer than ``k``.

        Args:
            queries: a list of :class:`Query`, or ``{qid: Query or text}``.
            k: documents per query.

        Returns:
            A :class:`Run`, each ranking sorted by score, best first.
        """
        check_k(k)
        qs = as_query_list(queries)
        run = Run(name="bm25s", metadata={"retriever": "bm25s", **self.params()})
        if not qs:
            return run
        tokens = self.tokenize([q.text for q in qs])
        kk = min(k, len(self.docids))
        ids, scores = self.model.retrieve(tokens, k=kk, show_progress=self.show_progress and len(qs) > 50,
                                          n_threads=self.threads or 0)
        for q, row_ids, row_scores in zip(qs, np.asarray(ids), np.asarray(scores)):
            keep = row_scores > 0
            run[q.qid] = Ranking.from_scores(q.qid, [(self.docids[i], float(s))
                                                    for i, s in zip(row_ids[keep], row_scores[keep])])
        return run

    # --- persistence -------------------------------------------------------------
    def save(self, path) -> None:
        """Write the index and its manifest into a folder (reopen with :meth:`load` or ``load_retriever``).

        Args:
            path: the folder.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(str(path / "bm25s"), show_progress=False)
        with open(path / "docids.json", "w", encoding="utf-8") as f:
            json.dump(self.docids, f)
        write_manifest(path, self.backend, self.format_version, self.params(), documents=len(self.docids))

    @classmethod
    def load(cls, path, mmap: bool = False, **kw) -> BM25Retriever:
        """Reopen an index folder :meth:`save` wrote.

        Args:
            path: the folder.
            mmap: memory-map the index instead of reading it.
            **kw: options such as ``threads``, ``show_progress``.

        Returns:
            The retriever.

        Raises:
            IndexMismatchError: a folder written by another retriever or format version.
        """
        import bm25s

        m = read_manifest(path, cls.backend, cls.format_version)
        p = m["params"]
        model = bm25s.BM25.load(str(Path(path) / "bm25s"), mmap=mmap, show_progress=False)
        with open(Path(path) / "docids.json", encoding="utf-8") as f:
            docids = json.load(f)
        return cls(model, docids, p["k1"], p["b"], p["stemmer"], p["stopwords"], p["token_pattern"], **kw)

    def __len__(self) -> int:
        return len(self.docids)

