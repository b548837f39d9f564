"""Request and response bodies of the three rerank APIs the server speaks, plus the error body.

- Jina ``POST /v1/rerank``: ``{model, query, documents: [str | {"text", ...}], top_n, return_documents}``
  -> ``{model, usage: {total_tokens}, results: [{index, relevance_score, document?}]}``.
- Cohere v2 ``POST /v2/rerank``: ``{model, query, documents: [str], top_n, max_tokens_per_doc}``
  -> ``{id, results: [{index, relevance_score}], meta}``.
- Hugging Face TEI ``POST /rerank``: ``{query, texts, truncate, truncation_direction, raw_scores,
  return_text}`` -> ``[{index, score, text?}]`` (a bare array).

Every request becomes a :class:`RerankJob` (query, texts, top_n, per-document token cap);
the batcher answers it with a :class:`Scored` (indices in ranking order, raw scores, relevance
in [0, 1]) that each API formats in its own shape. Unknown fields are ignored (clients send
API-specific extras); ``model`` is echoed, not checked: one server serves one model.
Errors are ``{"error": {"type", "message"}}`` with the HTTP status.
"""

from __future__ import annotations

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
        return RerankJob(self.query, [d if isinstance(d, str) else d.text for d in self.documents], self.top_n)

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
        return cls(model=model, usage={"total_tokens": scored.total_tokens}, results=results)


# --- Cohere /v2/rerank ------------------------------------------------------------------------
class CohereRerankRequest(_Request):
    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr]
    top_n: PositiveInt | None = None
    max_tokens_per_doc: PositiveInt | None = None

    def job(self) -> RerankJob:
        return RerankJob(self.query, list(self.documents), self.top_n, self.max_tokens_per_doc)


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
    truncation_direction: Literal["Right", "right"] = "Right"
    raw_scores: StrictBool = False
    return_text: StrictBool = False

    def job(self) -> RerankJob:
        return RerankJob(self.query, list(self.texts))


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


def tei_response(req: TEIRerankRequest, scored: Scored) -> list[dict[str, Any]]:
    return [TEIRank(index=i, score=raw if req.raw_scores else rel,
                    text=req.texts[i] if req.return_text else None).model_dump(exclude_none=True)
            for i, raw, rel in scored.top(None)]


# --- errors ---------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
