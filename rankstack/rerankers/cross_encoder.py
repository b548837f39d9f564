"""Cross-encoder reranker: a sentence-transformers ``CrossEncoder``, the baseline to beat.

    rr = load_reranker("cross_encoder", model="cross-encoder/ms-marco-MiniLM-L6-v2")
    rr.rerank("what is a lobster roll", ["...", "..."], k=10)

Runs through the same engine as the LLM rerankers (a :class:`PairRequest` per pair), so it
gets the same cross-query batching, SQLite cache/resume, fusion and progress bar. ``model`` is
anything ``CrossEncoder`` loads (hub id, local folder) or a rankstack alias (``minilm-l6``).
A folder that holds a bi-encoder (no classification head) gets a randomly initialised head;
``seed`` makes that head reproducible, but such a model ranks at random: train it first.
``engine="onnx-int8"`` (or ``onnx``, ``openvino``, ``openvino-int8``, ``torch-bf16``) runs the
transformer on another CPU runtime (:mod:`rankstack.rerankers.runtimes`), checked against torch on load.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from rankstack.errors import RankstackError
from rankstack.rerankers.base import PairRequest, Reranker
from rankstack.rerankers.runtimes import EncoderEngine
from rankstack.types import Doc, Query, Ranking

log = logging.getLogger(__name__)


class CrossEncoderReranker(EncoderEngine, Reranker):
    """Score = the CrossEncoder's raw output for (query, passage) (no activation, so logits rank
    the same as probabilities and keep their resolution). The CrossEncoder truncates each pair
    to ``max_length`` tokens; ``max_doc_tokens`` does not apply."""

    name = "cross_encoder"
    prompt_version = "1"
    uses_backend = False

    def __init__(self, model: str = "cross-encoder/ms-marco-MiniLM-L6-v2", *, batch_size: int = 32,
                 max_length: int | None = 512, device: str | None = None, num_labels: int | None = 1,
                 seed: int = 0, model_obj=None, engine: str = "torch", engine_tolerance: float | None = None,
                 engine_check: str = "refuse", **options):
        options.setdefault("max_doc_tokens", None)
        super().__init__(None, **options)
        self.model_name = str(model)
        self.batch_size = batch_size
        self.max_length = max_length
        self.model = model_obj if model_obj is not None else self._load(self.model_name, max_length, device,
                                                                         num_labels, seed)
        if getattr(self.model, "num_labels", 1) != 1:
            raise RankstackError(f"cross_encoder: {model} has {self.model.num_labels} labels; a reranker needs 1")
        self.setup_engine(engine, lambda: self.model[0].model, lambda m: setattr(self.model[0], "model", m),
                          self._weights_id, output="logits", tolerance=engine_tolerance, check=engine_check)

    def chunk_tokenizer(self):
        return self.model.tokenizer

    def passage_budget(self, query):
        if not self.max_length:
            return None
        return self.max_length - 3 - len(self.model.tokenizer(query.text, add_special_tokens=False)["input_ids"])

    def _check_scores(self):
        from rankstack.rerankers.runtimes import CHECK_PAIRS

        return self.execute([PairRequest(q, p) for q, p in CHECK_PAIRS])

    @staticmethod
    def _load(model: str, max_length, device, num_labels, seed):
        import torch
        from sentence_transformers import CrossEncoder

        from rankstack.models import ALIASES

        path = ALIASES[model]() if model in ALIASES else model
        with torch.random.fork_rng(devices=[]):  # a fresh head is seeded without touching global RNG state
            torch.manual_seed(seed)
            try:
                return CrossEncoder(path, num_labels=num_labels, max_length=max_length, device=device)
            except OSError as e:
                raise RankstackError(f"cannot load cross-encoder {model!r}: {e}") from e

    def params(self):
        return {"model": self.model_name, "max_length": self.max_length, "weights": self._weights or self._weights_id(),
                **self.engine_params()}

    def _weights_id(self) -> str:
        """A digest of the score head, so two differently initialised heads never share a cache."""
        from rankstack.models import weights_digest

        return weights_digest(self.model.model, last=True, params=2, values=None)

    def __repr__(self) -> str:
        eng = f", engine={self.engine!r}" if self.engine != "torch" else ""
        return f"CrossEncoderReranker({self.model_name!r}, max_length={self.max_length}{eng})"

    def program(self, query: Query, docs: list[Doc], stats: Counter):
        scores = yield [PairRequest(query.text, d.text) for d in docs]
        return Ranking.from_scores(query.qid, [(d.docid, float(s)) for d, s in zip(docs, scores)])

    def execute(self, requests: Sequence) -> list:
        if not all(isinstance(r, PairRequest) for r in requests):
            raise RankstackError(f"{self.name}: can only score PairRequests")
        import torch

        scores = self.model.predict([(r.query, r.passage) for r in requests], batch_size=self.batch_size,
                                    show_progress_bar=False, activation_fn=torch.nn.Identity())
        return [float(s) for s in scores]
