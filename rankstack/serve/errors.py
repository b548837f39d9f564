"""The error body every answer of the service shares, read by every family of client.

    {"error": {"type": "unauthorized", "message": "missing or wrong API key ..."},
     "detail": "missing or wrong API key ...",      # Jina-style clients (llama-index, langchain-community)
     "message": "missing or wrong API key ..."}     # Cohere-style clients

A schema error (422) gives ``detail`` in FastAPI's shape, a list of ``{"loc", "msg", "type"}``
(what infinity's client parses); ``error.message`` names the fields either way. A 504 also
carries ``x-should-retry: false`` (honoured by Stainless-generated SDKs and ``RemoteReranker``):
the work was dropped, a retry would only repeat it.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type",
                422: "validation_error", 499: "client_closed_request", 500: "internal_error", 503: "unavailable",
                504: "timeout"}
NO_RETRY = {"x-should-retry": "false"}


class ApiError(Exception):
    """An error answered with the shared body and ``status``; ``detail`` replaces the message in
    the top-level ``detail`` field (422: the list of field errors)."""

    def __init__(self, status: int, type: str, message: str, headers: dict | None = None, detail=None):
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type, message, headers or {}
        self.detail = detail


def error_body(type: str, message: str, detail=None) -> dict:
    return {"error": {"type": type, "message": message}, "detail": message if detail is None else detail,
            "message": message}


def error_response(status: int, type: str, message: str, headers: dict | None = None, detail=None) -> JSONResponse:
    return JSONResponse(error_body(type, message, detail), status_code=status, headers=headers)


def field_errors(errors: list[dict]) -> tuple[str, list[dict]]:
    """pydantic/FastAPI errors -> (one message naming each field, FastAPI's ``detail`` list)."""
    detail = [{"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]} for err in errors]
    message = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'body'}: {err['msg']}" for err in errors)
    return message, detail
