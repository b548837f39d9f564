"""First stage over long documents: index their passages, score a document by its passages' (MaxP).

    r = ChunkedRetriever.from_corpus(corpus, Chunking(128, 64), build=BM25Retriever.from_corpus)
    rankstack retrieve --corpus cacm --queries cacm --chunk-tokens 128 --chunk-stride 64 -o run.trec

Every document longer than ``chunking.tokens`` (whitespace words for BM25; the encoder's word
pieces for dense) is indexed as overlapping passages (:mod:`rankstack.data.passages`); a query's
top ``k * fanout`` passages are combined per document by ``chunking.aggregate`` (``max`` = MaxP;
``first``, ``mean``, ``sum`` over the passages that were retrieved) and the top ``k`` documents
returned. The run's metadata counts ``docs_chunked`` and ``passages``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from rankstack.data.passages import SEP, Chunking, aggregate, split_doc
from rankstack.retrieval.base import QueriesLike, Retriever, check_k, collect_docs
from rankstack.types import Doc, Ranking, Run

log = logging.getLogger(__name__)


def passages(corpus, chunking: Chunking, tokenizer=None) -> tuple[list[Doc], int]:
    """(the passages of every document, the number of documents split). A document that fits keeps its docid."""
    out, split = [], 0
    for d in collect_docs(corpus):
        parts = split_doc(d, tokenizer, chunking)
        if len(parts) == 1:
            out.append(d)
            continue
        split += 1
        out.extend(Doc(f"{d.docid}{SEP}{i}", p) for i, p in enumerate(parts))
    return out, split


class ChunkedRetriever(Retriever):
    """A retriever over passages whose rankings are documents (see the module docstring)."""

    def __init__(self, inner: Retriever, chunking: Chunking, fanout: int = 4, docs_chunked: int = 0):
        self.inner, self.chunking, self.fanout, self.docs_chunked = inner, chunking, int(fanout), docs_chunked

    @classmethod
    def from_corpus(cls, corpus, chunking: Chunking, build: Callable[[list[Doc]], Retriever], tokenizer=None,
                    fanout: int = 4) -> ChunkedRetriever:
        """Split ``corpus`` and index its passages with ``build`` (e.g. ``BM25Retriever.from_corpus``)."""
        docs, split = passages(corpus, chunking, tokenizer)
        log.info("chunked first stage: %d documents split, %d passages indexed", split, len(docs))
        return cls(build(docs), chunking, fanout, split)

    def params(self) -> dict[str, Any]:
        return {**self.inner.params(), "chunking": asdict(self.chunking), "fanout": self.fanout}

    def __len__(self) -> int:
        return len(self.inner)

    def __repr__(self) -> str:
        return f"ChunkedRetriever({self.inner!r}, {self.chunking})"

    def save(self, path) -> None:
        """The inner index, its manifest noting the chunking (``load_chunked`` reopens it)."""
        import json
        from pathlib import Path

        from rankstack.retrieval.base import MANIFEST

        self.inner.save(path)
        f = Path(path) / MANIFEST
        body = json.loads(f.read_text())
        body["chunking"] = {**asdict(self.chunking), "fanout": self.fanout, "docs_chunked": self.docs_chunked}
        f.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")

    def retrieve(self, queries: QueriesLike, k: int = 1000) -> Run:
        check_k(k)
        found = self.inner.retrieve(queries, k=k * self.fanout)
        run = Run(name=found.name, metadata={**found.metadata, "chunking": asdict(self.chunking),
                                             "docs_chunked": self.docs_chunked, "passages": len(self.inner)})
        for qid, ranking in found.items():
            per: dict[str, list[tuple[int, float]]] = {}
            for sd in ranking.docs:
                docid, sep, idx = sd.docid.rpartition(SEP)
                if not sep:
                    docid, idx = sd.docid, "0"
                per.setdefault(docid, []).append((int(idx), sd.score))
            scores = []
            for docid, got in per.items():
                got.sort()
                if self.chunking.aggregate == "first" and got[0][0] != 0:
                    continue  # its first passage was not retrieved
                scores.append((docid, aggregate([s for _, s in got], self.chunking.aggregate)))
            run[qid] = Ranking.from_scores(qid, scores).top(k)
        return run


def wrap_if_chunked(retriever: Retriever, manifest: dict) -> Retriever:
    """An index saved by :meth:`ChunkedRetriever.save` comes back chunked."""
    ch = manifest.get("chunking")
    if not ch:
        return retriever
    return ChunkedRetriever(retriever, Chunking(ch["tokens"], ch["stride"], ch["aggregate"]), ch.get("fanout", 4),
                            ch.get("docs_chunked", 0))
