"""Limits on every input of a rerank request, each answered with a 4xx JSON error before the
request reaches the model (so a bad request never joins, and never fails, a merged pass).

Body (checked here, on the event loop): UTF-8 (400 ``invalid_utf8``), JSON (400 ``invalid_json``),
nesting depth (400 ``json_too_deep``), integer literals longer than ``max_int_digits``
(400 ``number_too_large``; Python's own int parser would raise past 4,300 digits), strings that
are not valid Unicode (a lone UTF-16 surrogate such as ``"\\ud800"``: 400 ``invalid_unicode``),
then the API's schema (422, naming the fields), document count (413), characters per document
(413) and per instruction (413). Query length in characters and in tokens is the batcher's
(:mod:`rankstack.serve.batcher`): cut, or 413, as the request and the server say.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from rankstack.serve.errors import ApiError, field_errors
from rankstack.serve.schemas import RerankJob


def _int(limit: int):
    def parse(literal: str) -> int:
        if len(literal.lstrip("-")) > limit:
            raise ApiError(400, "number_too_large", f"an integer of {len(literal)} digits; at most {limit} are accepted")
        return int(literal)

    return parse


def _float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise ApiError(400, "number_too_large", f"the number {literal[:40]} is out of range")
    return value


def check_tree(obj, max_depth: int) -> None:
    """Depth at most ``max_depth``, every string valid Unicode (iterative: no recursion limit)."""
    stack = [(obj, 1, "body")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ApiError(400, "invalid_unicode", f"{where}: a lone surrogate (character {e.start}); "
                                                       "strings must be valid Unicode") from None
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise ApiError(400, "json_too_deep", f"the JSON is nested deeper than {max_depth} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str):
                stack.append((key, depth, where))
            stack.append((value, depth + 1, f"{where}.{key}" if where != "body" else str(key)))


def load_json(body: bytes, *, max_depth: int = 16, max_int_digits: int = 32):
    """The body as JSON (see the module docstring for the checks and their errors)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "invalid_utf8", f"the body is not UTF-8 (byte {e.start}: {e.reason})") from None
    try:
        obj = json.loads(text, parse_int=_int(max_int_digits), parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not JSON ({e.msg}; line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise ApiError(400, "json_too_deep", f"the JSON is nested deeper than {max_depth} levels") from None
    check_tree(obj, max_depth)
    return obj


def _constant(name: str):
    raise ApiError(400, "invalid_json", f"the body is not JSON ({name} is not a JSON value)")


def validate(obj, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        message, detail = field_errors(e.errors(include_url=False))
        raise ApiError(422, "validation_error", message, detail=detail) from None


def check_limits(job: RerankJob, field: str, config) -> None:
    """Document count and characters per document and instruction (413); the query's are the batcher's."""
    if not job.texts:
        raise ApiError(422, "validation_error", f"{field}: must not be empty")
    if len(job.texts) > config.max_docs:
        raise ApiError(413, "too_many_documents", f"{field}: {len(job.texts)} documents; the limit is {config.max_docs}")
    for i, t in enumerate(job.texts):
        if len(t) > config.max_doc_chars:
            raise ApiError(413, "document_too_long",
                           f"{field}.{i}: {len(t)} characters; the limit is {config.max_doc_chars}")
    if job.instruction is not None and len(job.instruction) > config.max_instruction_chars:
        raise ApiError(413, "instruction_too_long", f"instruction: {len(job.instruction)} characters; the limit is "
                                                    f"{config.max_instruction_chars}")
