"""Dense (bi-encoder) reranker: cosine between the query's and each candidate's embedding.

    rr = load_reranker("dense", model="minilm-l6")           # sentence-transformers all-MiniLM-L6-v2
    run = rr.rerank_run(ds.run, ds.queries, ds.corpus, depth=100)

The cheap, strong baseline every table shows, and the default distillation teacher
(``dense:minilm-l6``). It runs through the same engine as the LLM rerankers: a program yields
one :class:`EmbedRequest` for the query and one per candidate, so the texts of all queries are
encoded together in batches, a passage shared by many queries is encoded once per round, and
every embedding is kept in the SQLite cache keyed by its text (a rerun, or another run over the
same corpus, encodes nothing). Fusion with the first stage and the progress bar come with it.

``model`` is anything sentence-transformers loads (hub id, local folder) or a rankstack alias
(``minilm-l6``). ``similarity="cosine"`` (default; embeddings L2-normalised) or ``"dot"``;
``query_prefix``/``doc_prefix`` for models trained with them (E5: ``"query: "``, ``"passage: "``).
Passages are cut by the encoder at its ``max_seq_length`` (256 word pieces for MiniLM).
``engine`` runs the encoder on ONNX Runtime or OpenVINO, fp32 or int8
(:mod:`rankstack.rerankers.runtimes`: ``engine="onnx-int8"``, checked against torch on load).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rankstack.errors import RankstackError
from rankstack.rerankers.base import EmbedRequest, Reranker
from rankstack.rerankers.runtimes import EncoderEngine
from rankstack.types import Doc, Query, Ranking

log = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "dot")


class DenseReranker(EncoderEngine, Reranker):
    """Score = similarity of the query and passage embeddings (see the module docstring)."""

    name = "dense"
    prompt_version = "1"
    uses_backend = False

    def __init__(self, model: str = "minilm-l6", *, similarity: str = "cosine", batch_size: int = 64,
                 device: str | None = None, query_prefix: str = "", doc_prefix: str = "",
                 max_seq_length: int | None = None, encoder=None, engine: str = "torch",
                 engine_tolerance: float | None = None, engine_check: str = "refuse", **options):
        if similarity not in SIMILARITIES:
            raise RankstackError(f"dense: similarity must be one of {SIMILARITIES}, got {similarity!r}")
        options.setdefault("max_doc_tokens", None)  # the encoder truncates to its own max_seq_length
        options.setdefault("chunk_size", 256)
        super().__init__(None, **options)
        from rankstack.models import weights_digest
        from rankstack.retrieval.dense import load_encoder

        self.model_name = str(model)
        self.encoder = encoder if encoder is not None else load_encoder(self.model_name, device)
        if max_seq_length:
            self.encoder.max_seq_length = int(max_seq_length)
        self.similarity = similarity
        self.batch_size = batch_size
        self.query_prefix, self.doc_prefix = query_prefix, doc_prefix
        self.setup_engine(engine, lambda: self.encoder[0].model, lambda m: setattr(self.encoder[0], "model", m),
                          lambda: weights_digest(self.encoder), output="last_hidden_state",
                          tolerance=engine_tolerance, check=engine_check)

    def chunk_tokenizer(self):
        return self.encoder.tokenizer

    def passage_budget(self, query):
        cap = getattr(self.encoder, "max_seq_length", None)
        return None if cap is None else cap - 2  # [CLS] and [SEP]

    def _check_scores(self):
        from rankstack.rerankers.runtimes import CHECK_PAIRS

        q = self.execute([EmbedRequest(a, "query") for a, _ in CHECK_PAIRS])
        p = self.execute([EmbedRequest(b, "passage") for _, b in CHECK_PAIRS])
        return [float(np.dot(x, y)) for x, y in zip(q, p)]

    def params(self):
        from rankstack.models import weights_digest

        return {"model": self.model_name, "similarity": self.similarity, "query_prefix": self.query_prefix,
                "doc_prefix": self.doc_prefix, "max_seq_length": getattr(self.encoder, "max_seq_length", None),
                "weights": self._weights or weights_digest(self.encoder),
                **self.engine_params()}

    def __repr__(self) -> str:
        eng = f", engine={self.engine!r}" if self.engine != "torch" else ""
        return f"DenseReranker({self.model_name!r}, similarity={self.similarity!r}{eng})"

    def program(self, query: Query, docs: list[Doc], stats: Counter):
        vecs = yield [EmbedRequest(query.text, "query")] + [EmbedRequest(d.text, "passage") for d in docs]
        q, mat = vecs[0], np.stack(vecs[1:])
        scores = mat @ q
        return Ranking.from_scores(query.qid, [(d.docid, float(s)) for d, s in zip(docs, scores)])

    def execute(self, requests: Sequence) -> list:
        if not all(isinstance(r, EmbedRequest) for r in requests):
            raise RankstackError(f"{self.name}: can only run EmbedRequests")
        prefix = self.query_prefix if requests[0].role == "query" else self.doc_prefix
        emb = self.encoder.encode([prefix + r.text for r in requests], batch_size=self.batch_size,
                                  show_progress_bar=False, convert_to_numpy=True,
                                  normalize_embeddings=self.similarity == "cosine")
        return list(np.asarray(emb, dtype=np.float32))
