"""Request and response bodies of the three rerank APIs the server speaks, plus the error body.

- Jina ``POST /v1/rerank``: ``{model, query, documents: [str | {"text", ...}], top_n, return_documents}``
  -> ``{model, usage: {total_tokens}, results: [{index, relevance_score, document?}]}``.
- Cohere v2 ``POST /v2/rerank``: ``{model, query, documents: [str], top_n, max_tokens_per_doc}``
  -> ``{id, results: [{index, relevance_score}], meta}``.
- Hugging Face TEI ``POST /rerank``: ``{query, texts, truncate, truncation_direction, raw_scores,
  return_text}`` -> ``[{index, score, text?}]`` (a bare array). ``truncate`` is honoured: false (TEI's
  default) answers 413 for a query or text over the token limits, true cuts them (from the
  ``truncation_direction`` side). A server started with ``--chunk-tokens`` scores a long text whole
  (chunks, aggregated) where ``truncate`` is false, and its first chunk where it is true; Cohere's
  ``max_tokens_per_doc`` cuts first (``rankstack.rerankers.chunking.service_texts``).
- infinity's Cohere-shaped ``POST /rerank`` (the same path, told apart by its body: ``documents``
  instead of ``texts``): ``{model, query, documents: [str], top_n, return_documents, raw_scores}``
  -> ``{object, id, created, model, usage: {prompt_tokens, total_tokens}, results: [{index,
  relevance_score, document?}]}``.
- ``GET /info``: TEI's model-info shape (what ``tei-client`` reads first).

Every route also takes an extra ``instruction`` field: the query's task instruction
(:meth:`rankstack.rerankers.base.Reranker.instruct`). Every request becomes a :class:`RerankJob`
(query, texts, top_n, token caps, instruction); the batcher answers it with a :class:`Scored`
(indices in ranking order, raw scores, relevance in [0, 1]) that each API formats in its own
shape. Unknown fields are ignored (clients send API-specific extras); ``model`` is echoed, not
checked: one server serves one model. Errors: :mod:`rankstack.serve.errors`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

PositiveInt = Annotated[StrictInt, Field(ge=1)]


@dataclass
class RerankJob:
    """What every API's request asks for."""

    query: str
    texts: list[str]
    top_n: int | None = None
    max_tokens_per_doc: int | None = None
    instruction: str | None = None
    #: over-long query or texts: cut (True), 413 (False), or the server's default (None)
    truncate: bool | None = None
    truncate_left: bool = False


@dataclass
class Scored:
    """The batcher's answer to one job: documents in ranking order (best first)."""

    index: list[int]
    raw: list[float]
    relevance: list[float]
    total_tokens: int

    def top(self, n: int | None) -> list[tuple[int, float, float]]:
        rows = list(zip(self.index, self.raw, self.relevance))
        return rows if n is None else rows[:n]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")
    instruction: StrictStr | None = None


# --- Jina /v1/rerank -------------------------------------------------------------------------
class TextDocument(BaseModel):
    """A Jina document object: ``{"text": ...}``; other fields (``id``, ...) are kept and echoed."""

    model_config = ConfigDict(extra="allow")
    text: StrictStr


class JinaRerankRequest(_Request):
    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr | TextDocument]
    top_n: PositiveInt | None = None
    return_documents: StrictBool = True

    def job(self) -> RerankJob:
        return RerankJob(self.query, [d if isinstance(d, str) else d.text for d in self.documents], self.top_n,
                         instruction=self.instruction)

    def document(self, i: int) -> dict[str, Any]:
        d = self.documents[i]
        return {"text": d} if isinstance(d, str) else d.model_dump()


class JinaResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class JinaRerankResponse(BaseModel):
    model: str
    usage: dict[str, int]
    results: list[JinaResult]

    @classmethod
    def build(cls, req: JinaRerankRequest, scored: Scored, model: str) -> JinaRerankResponse:
        results = [JinaResult(index=i, relevance_score=rel, document=req.document(i) if req.return_documents else None)
                   for i, _, rel in scored.top(req.top_n)]
        return cls(model=model, usage={"total_tokens": scored.total_tokens, "prompt_tokens": scored.total_tokens},
                   results=results)


# --- Cohere /v2/rerank ------------------------------------------------------------------------
class CohereRerankRequest(_Request):
    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr]
    top_n: PositiveInt | None = None
    max_tokens_per_doc: PositiveInt | None = None

    def job(self) -> RerankJob:
        return RerankJob(self.query, list(self.documents), self.top_n, self.max_tokens_per_doc,
                         instruction=self.instruction)


class CohereResult(BaseModel):
    index: int
    relevance_score: float


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: dict[str, Any]

    @classmethod
    def build(cls, req: CohereRerankRequest, scored: Scored) -> CohereRerankResponse:
        return cls(id=str(uuid.uuid4()),
                   results=[CohereResult(index=i, relevance_score=rel) for i, _, rel in scored.top(req.top_n)],
                   meta={"api_version": {"version": "2"}, "billed_units": {"search_units": 1},
                         "tokens": {"input_tokens": scored.total_tokens}})


# --- Hugging Face TEI /rerank -------------------------------------------------------------------
class TEIRerankRequest(_Request):
    query: StrictStr
    texts: list[StrictStr]
    truncate: StrictBool = False
    truncation_direction: Literal["Right", "right", "Left", "left"] = "Right"
    raw_scores: StrictBool = False
    return_text: StrictBool = False

    def job(self) -> RerankJob:
        return RerankJob(self.query, list(self.texts), instruction=self.instruction, truncate=self.truncate,
                         truncate_left=self.truncation_direction.lower() == "left")


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


def tei_response(req: TEIRerankRequest, scored: Scored) -> list[dict[str, Any]]:
    return [TEIRank(index=i, score=raw if req.raw_scores else rel,
                    text=req.texts[i] if req.return_text else None).model_dump(exclude_none=True)
            for i, raw, rel in scored.top(None)]


# --- infinity's Cohere-shaped /rerank ----------------------------------------------------------
class InfinityRerankRequest(_Request):
    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr]
    top_n: PositiveInt | None = None
    return_documents: StrictBool = False
    raw_scores: StrictBool = False

    def job(self) -> RerankJob:
        return RerankJob(self.query, list(self.documents), self.top_n, instruction=self.instruction)


def infinity_response(req: InfinityRerankRequest, scored: Scored, model: str) -> dict[str, Any]:
    results = []
    for i, raw, rel in scored.top(req.top_n):
        row: dict[str, Any] = {"index": i, "relevance_score": raw if req.raw_scores else rel}
        if req.return_documents:
            row["document"] = req.documents[i]
        results.append(row)
    return {"object": "rerank", "id": str(uuid.uuid4()), "created": int(time.time()), "model": req.model or model,
            "usage": {"prompt_tokens": scored.total_tokens, "total_tokens": scored.total_tokens}, "results": results}


def tei_info(model: str, max_input_length: int | None, max_docs: int, max_queue_requests: int) -> dict[str, Any]:
    """``GET /info`` in TEI's shape (a reranker: a one-label classifier)."""
    from rankstack import __version__

    return {"model_id": model, "model_sha": None, "model_dtype": "float32",
            "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
            "max_concurrent_requests": max_queue_requests, "max_input_length": max_input_length,
            "max_batch_tokens": None, "max_batch_requests": None, "max_client_batch_size": max_docs,
            "auto_truncate": False, "tokenization_workers": 1, "version": f"rankstack-{__version__}", "sha": None,
            "docker_label": None}
