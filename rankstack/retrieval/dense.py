"""Dense retrieval: a sentence-transformers encoder + a FAISS index (flat inner product or HNSW).

The encoder is any sentence-transformers model (a local folder, a hub id, or an alias of
:mod:`rankstack.models` such as ``minilm-l6``). Embeddings are L2-normalised by default, so
inner product is cosine similarity. The corpus is encoded in batches with a progress bar;
a flat index moves to the GPU when FAISS sees one (``faiss.get_num_gpus() > 0``).

    r = DenseRetriever.from_corpus(corpus, model="minilm-l6", index="flat")   # or index="hnsw"
    run = r.retrieve(queries, k=100)
    r.save("indexes/cacm.minilm"); r = DenseRetriever.load("indexes/cacm.minilm")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import RankstackError
from rankstack.retrieval.base import (QueriesLike, Retriever, as_query_list, check_k, check_unique, collect_docs,
                                      read_manifest, write_manifest)
from rankstack.types import Ranking, Run

log = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw")


def load_encoder(model: str, device: str | None = None):
    """A sentence-transformers bi-encoder.

    Args:
        model: an alias (``minilm-l6``), a hub id or a folder.
        device: ``cpu``, ``cuda`` ... (default: sentence-transformers' choice).

    Returns:
        The ``SentenceTransformer``.

    Raises:
        RankstackError: the model cannot be loaded.
    """
    from sentence_transformers import SentenceTransformer

    from rankstack.models import resolve

    path = resolve(model).path
    try:
        return SentenceTransformer(path, device=device)
    except OSError as e:
        raise RankstackError(f"cannot load sentence-transformers model {model!r}: {e}") from e


def _dim(encoder) -> int:
    get = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    return int(get())


def _to_gpu(index):
    import faiss

    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        if isinstance(index, faiss.IndexFlat):
            log.info("FAISS: moving the flat index to %d GPU(s)", faiss.get_num_gpus())
            return faiss.index_cpu_to_all_gpus(index)
        log.info("FAISS sees a GPU, but %s indexes stay on the CPU (FAISS has no GPU HNSW)", type(index).__name__)
    return index


class DenseRetriever(Retriever):
    """Bi-encoder retrieval over a FAISS index of normalised embeddings.

    Build with :meth:`from_corpus` (or :meth:`from_embeddings`), reopen with :meth:`load`.

    Args:
        encoder: the sentence-transformers model.
        index: the FAISS index.
        docids: the docid of each indexed row.
        model: the encoder's name or path (recorded in the manifest).
        index_type: ``flat`` (exact) or ``hnsw``.
        normalize: L2-normalise embeddings (inner product = cosine).
        batch_size: encoding batch size.
        hnsw_m: HNSW links per node.
        ef_search: HNSW search breadth.
        query_prefix: text put before each query (E5: ``"query: "``).
        doc_prefix: text put before each document.
        show_progress: progress bars.
    """

    backend = "dense"
    format_version = 1

    def __init__(self, encoder, index, docids: list[str], model: str, index_type: str = "flat",
                 normalize: bool = True, batch_size: int = 64, hnsw_m: int = 32, ef_search: int = 128,
                 query_prefix: str = "", doc_prefix: str = "", show_progress: bool = True):
        self.encoder = encoder
        self.cpu_index = index
        self.index = _to_gpu(index)
        self.docids = docids
        self.model = model
        self.index_type = index_type
        self.normalize = normalize
        self.batch_size = batch_size
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.query_prefix, self.doc_prefix = query_prefix, doc_prefix
        self.show_progress = show_progress
        if index_type == "hnsw":
            self.cpu_index.hnsw.efSearch = ef_search

    def params(self) -> dict[str, Any]:
        """The options that define the index.

        Returns:
            ``{option: value}`` (written to the index manifest).
        """
        p: dict[str, Any] = {"model": self.model, "index": self.index_type, "normalize": self.normalize,
                             "query_prefix": self.query_prefix, "doc_prefix": self.doc_prefix}
        if self.index_type == "hnsw":
            p.update(hnsw_m=self.hnsw_m, ef_search=self.ef_search)
        return p

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Embeddings of texts (normalised when the index is).

        Args:
            texts: the texts (prefixes already added).
            show_progress: a progress bar.

        Returns:
            A float32 array, one row per text.
        """
        emb = self.encoder.encode(texts, batch_size=self.batch_size, show_progress_bar=show_progress,
                                  normalize_embeddings=self.normalize, convert_to_numpy=True)
        return np.ascontiguousarray(emb, dtype=np.float32)

    @classmethod
    def from_corpus(cls, corpus, model: str = "minilm-l6", index: str = "flat", normalize: bool = True,
                    batch_size: int = 64, hnsw_m: int = 32, ef_construction: int = 200, ef_search: int = 128,
                    query_prefix: str = "", doc_prefix: str = "", device: str | None = None,
                    show_progress: bool = True, encoder=None) -> DenseRetriever:
        """Encode every document (``Doc.full_text``) in batches and index the embeddings.

        Args:
            corpus: a DocStore, an iterable of :class:`Doc`, or a corpus file.
            model: the encoder (alias, hub id, folder).
            index: ``flat`` or ``hnsw``.
            normalize: L2-normalise embeddings.
            batch_size: encoding batch size.
            hnsw_m: HNSW links per node.
            ef_construction: HNSW build breadth.
            ef_search: HNSW search breadth.
            query_prefix: text put before each query.
            doc_prefix: text put before each document.
            device: the encoder's device.
            show_progress: progress bars.
            encoder: an already loaded encoder (then ``model`` only names it).

        Returns:
            The retriever.
        """
        docs = collect_docs(corpus)
        encoder = encoder or load_encoder(model, device)
        self = cls.from_embeddings(np.zeros((0, _dim(encoder)), dtype=np.float32), [], encoder, model, index,
                                   normalize, batch_size, hnsw_m, ef_construction, ef_search, query_prefix,
                                   doc_prefix, show_progress)
        log.info("dense: encoding %d documents with %s", len(docs), model)
        self.add(self.encode([doc_prefix + d.full_text for d in docs], show_progress=show_progress),
                 [d.docid for d in docs])
        return self

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, docids: list[str], encoder, model: str = "minilm-l6",
                        index: str = "flat", normalize: bool = True, batch_size: int = 64, hnsw_m: int = 32,
                        ef_construction: int = 200, ef_search: int = 128, query_prefix: str = "",
                        doc_prefix: str = "", show_progress: bool = True) -> DenseRetriever:
        """Index precomputed document embeddings (rows aligned with ``docids``).

        Args:
            embeddings: one row per document.
            docids: the documents' ids.
            encoder: the encoder queries are embedded with.
            model: its name.
            index: ``flat`` or ``hnsw``.
            normalize: L2-normalise the embeddings.
            batch_size: query encoding batch size.
            hnsw_m: HNSW links per node.
            ef_construction: HNSW build breadth.
            ef_search: HNSW search breadth.
            query_prefix: text put before each query.
            doc_prefix: text put before each document (recorded).
            show_progress: progress bars.

        Returns:
            The retriever.
        """
        import faiss

        if index not in INDEX_TYPES:
            raise RankstackError(f"unknown dense index {index!r}; one of {INDEX_TYPES}")
        dim = _dim(encoder)
        if index == "flat":
            fx = faiss.IndexFlatIP(dim)
        else:
            fx = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            fx.hnsw.efConstruction = ef_construction
        self = cls(encoder, fx, [], model, index, normalize, batch_size, hnsw_m, ef_search, query_prefix,
                   doc_prefix, show_progress)
        if len(docids):
            self.add(embeddings, docids)
        return self

    def add(self, embeddings: np.ndarray, docids: list[str]) -> None:
        """Append documents' embeddings to the index.

        Args:
            embeddings: one row per document.
            docids: their ids (new ones: a docid already indexed raises).
        """
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(docids) or emb.shape[1] != self.cpu_index.d:
            raise RankstackError(f"embeddings of shape {emb.shape} for {len(docids)} docs in a {self.cpu_index.d}-dim index")
        if not docids:
            raise RankstackError("the corpus is empty: nothing to index")
        check_unique(docids, "docid", "the corpus", known=self.docids)
        self.cpu_index.add(emb)
        self.docids.extend(docids)
        self.index = _to_gpu(self.cpu_index)

    def retrieve(self, queries: QueriesLike, k: int = 1000) -> Run:
        """Top-``k`` documents per query by inner product (cosine when normalised).

        Args:
            queries: a list of :class:`Query`, or ``{qid: Query or text}``.
            k: documents per query.

        Returns:
            A :class:`Run`, each ranking sorted by score, best first.
        """
        check_k(k)
        qs = as_query_list(queries)
        run = Run(name=f"dense-{Path(self.model).name}", metadata={"retriever": "dense", **self.params()})
        if not qs:
            return run
        emb = self.encode([self.query_prefix + q.text for q in qs], show_progress=self.show_progress and len(qs) > 1000)
        scores, ids = self.index.search(emb, min(k, len(self.docids)))
        for q, row_s, row_i in zip(qs, scores, ids):
            run[q.qid] = Ranking.from_scores(q.qid, [(self.docids[i], float(s)) for s, i in zip(row_s, row_i) if i >= 0])
        return run

    def save(self, path) -> None:
        """Write the FAISS index, the docids and the manifest into a folder.

        Args:
            path: the folder.
        """
        import faiss

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.cpu_index, str(path / "faiss.index"))
        with open(path / "docids.json", "w", encoding="utf-8") as f:
            json.dump(self.docids, f)
        write_manifest(path, self.backend, self.format_version, self.params(), documents=len(self.docids),
                       dim=int(self.cpu_index.d))

    @classmethod
    def load(cls, path, model: str | None = None, device: str | None = None, batch_size: int = 64,
             ef_search: int | None = None, show_progress: bool = True, encoder=None) -> DenseRetriever:
        """Reopen a saved index.

        Args:
            path: the folder :meth:`save` wrote.
            model: overrides the encoder path recorded at build time (the same model elsewhere on
                disk); must give the same embedding size.
            device: the encoder's device.
            batch_size: query encoding batch size.
            ef_search: HNSW search breadth (default: the recorded one).
            show_progress: progress bars.
            encoder: an already loaded encoder.

        Returns:
            The retriever.

        Raises:
            IndexMismatchError: another retriever's folder, or an encoder of another size.
        """
        import faiss

        m = read_manifest(path, cls.backend, cls.format_version)
        p = m["params"]
        fx = faiss.read_index(str(Path(path) / "faiss.index"))
        with open(Path(path) / "docids.json", encoding="utf-8") as f:
            docids = json.load(f)
        encoder = encoder or load_encoder(model or p["model"], device)
        if _dim(encoder) != fx.d:
            raise RankstackError(f"{path}: index holds {fx.d}-dim vectors, encoder gives {_dim(encoder)}")
        return cls(encoder, fx, docids, model or p["model"], p["index"], p["normalize"], batch_size,
                   p.get("hnsw_m", 32), ef_search or p.get("ef_search", 128), p.get("query_prefix", ""),
                   p.get("doc_prefix", ""), show_progress)

    def __len__(self) -> int:
        return len(self.docids)
