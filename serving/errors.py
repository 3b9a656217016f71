"""The API's one error model, `{"error": "<field>: what was wrong and how to fix it", ...}`, and the one place that
writes it: every 4xx/5xx body of every route is built here, and `documented` declares it for each status a route
answers, so the OpenAPI document stays true."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response

NOT_LOADED = "model not loaded; see the server log"
MAX_LISTED = 5  # validation errors named in `error`; `detail` has them all
# BentoML's own 5xx bodies are generic, so these say what causes them here.
SERVER_ERRORS = {500: "unexpected server error; the server log has the traceback, please report it",
                 503: "no model is loaded yet (see the server log), or the server is overloaded; retry shortly"}
REASONS = {  # what each status means on this API, for the document
    400: "not a valid request: not JSON, not an object, or a field fails validation (`error` names it)",
    401: "missing or wrong header 'Authorization: Bearer <TEXTCLF_API_TOKEN>'",
    404: "no logged prediction has that id",
    413: "the body is larger than TEXTCLF_MAX_BODY_BYTES",
    415: "the Content-Type is not application/json",
    422: "a field is missing, unexpected, of the wrong type, or not one of the model's labels (`error` names it)",
    503: "no model loaded yet, the server overloaded, or the feedback store down; retry shortly"}


class ValidationIssue(BaseModel):
    type: str = Field(description="pydantic's error type, e.g. string_too_long")
    loc: list[str | int] = Field(description="where in the body, e.g. ['texts', 3]")
    msg: str


class ErrorMessage(BaseModel):
    error: str = Field(description="what was wrong, naming the field, and how to fix it")
    detail: list[ValidationIssue] | None = Field(None, description="every validation error of the body")
    labels: list[str] | None = Field(None, description="the model's labels, when the label sent is not one of them")
    rollout: dict[str, Any] | None = Field(None, description="GET /model: what the worker follows, unready")


class ApiError(Exception):
    """An error answer, raised where the problem is found and answered by the route with `error_response`."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra


def error_response(status: int, error: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    """The answer, built through `ErrorMessage` so no route can drift from the document; plain ASGI middleware
    calls it as an ASGI app (error paths only: the hot path builds nothing here)."""
    body = ErrorMessage(error=error, **extra).model_dump_json(exclude_none=True)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def field_name(loc: Sequence[str | int]) -> str:
    """`texts[3]` or `label`; `body` for the body as a whole."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"


def invalid(errors: Sequence[Mapping[str, Any]],
            explain: Callable[[Mapping[str, Any]], str] = lambda e: str(e.get("msg", "invalid"))) -> dict[str, Any]:
    """`error` and `detail` for pydantic's errors: `texts[3]: Input should be ...; ...`, at most MAX_LISTED named."""
    named = [f"{field_name(e.get('loc', ()))}: {explain(e)}" for e in errors[:MAX_LISTED]]
    more = f" (and {len(errors) - MAX_LISTED} more)" if len(errors) > MAX_LISTED else ""
    detail = [{"type": str(e.get("type")), "loc": list(e.get("loc", ())), "msg": str(e.get("msg"))} for e in errors]
    return {"error": "; ".join(named) + more, "detail": detail}


def from_framework(status: int, body: bytes) -> dict[str, Any]:
    """Our model for an error body BentoML wrote (pydantic's errors, `{"error": ...}`, or plain text)."""
    if status >= 500:
        return {"error": SERVER_ERRORS.get(status, HTTPStatus(status).phrase)}
    try:
        payload = json.loads(body)
    except ValueError:
        payload = body.decode("utf-8", "replace")
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]  # BentoML wraps some client errors in a one-item list
    if not isinstance(payload, dict):
        return {"error": str(payload)[:500]}
    details = payload.get("detail")
    if isinstance(details, list) and details and all(isinstance(d, dict) for d in details):
        return invalid(details)
    return {"error": str(payload.get("error", HTTPStatus(status).phrase))}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses`: each status answers an `ErrorMessage`, with what it means here."""
    return {status: {"model": ErrorMessage, "description": REASONS[status]} for status in statuses}
