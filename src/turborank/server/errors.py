"""Server errors and the one table that maps them to HTTP status, Jina code and TEI error type.

The exception handlers and the OpenAPI ``responses`` of every route are both built from ``PROBLEMS``,
so the documented status codes cannot drift from the ones sent (TEI documents 413 and sends 422).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from ..errors import BackendError, InputError, TurborankError


class ServerError(TurborankError):
    """Base of the errors a request can end with; subclasses are listed in PROBLEMS."""

    headers: dict[str, str] | None = None
    fields: list[dict[str, Any]] | None = None  # per-field details of a validation error


class EmptyInput(ServerError):
    """The query or the document list is empty."""


class InvalidInput(ServerError):
    """A field has the wrong type or value (also FastAPI's own body validation errors)."""


class InvalidBody(ServerError):
    """The body is not JSON, or not UTF-8."""


class BodyTimeout(ServerError):
    """The client did not send the whole body within --read-timeout."""


class UnknownModel(ServerError):
    """The request names a model this server does not serve."""


class InputTooLong(ServerError):
    """A pair exceeds the token limit and the request asked not to truncate."""


class TooManyDocuments(ServerError):
    """More documents than --max-documents."""


class BodyTooLarge(ServerError):
    """The body is larger than --max-body-bytes."""


class MissingApiKey(ServerError):
    """Auth is on and the request has no bearer key."""


class InvalidApiKey(ServerError):
    """The bearer key is not one of the accepted keys."""


class NotFound(ServerError):
    """No such route."""


class MethodNotAllowed(ServerError):
    """The route exists, the method does not."""


class Overloaded(ServerError):
    """The model's pending-token queue is full; retry after the ``Retry-After`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class ClientClosed(ServerError):
    """The client went away before its answer was ready; its queued work was dropped."""


class BackendFailure(ServerError):
    """Inference failed (NaN scores, device error). Not the caller's fault."""


class NotReady(ServerError):
    """The model cannot serve (health probe failed, or shutting down)."""


class RequestTimeout(ServerError):
    """The request did not finish within --request-timeout."""


class InternalError(ServerError):
    """An unexpected exception: a bug."""


@dataclass(frozen=True)
class Problem:
    status: int
    code: str  # Jina's error envelope ``code``
    tei_type: str  # TEI's ``error_type``


PROBLEMS: dict[type[ServerError], Problem] = {
    EmptyInput: Problem(400, "INPUT_EMPTY", "empty"),
    InvalidBody: Problem(400, "INPUT_INVALID_BODY", "validation"),
    UnknownModel: Problem(400, "INPUT_MODEL_NOT_FOUND", "validation"),
    MissingApiKey: Problem(401, "AUTH_MISSING_API_KEY", "unauthorized"),
    InvalidApiKey: Problem(401, "AUTH_INVALID_API_KEY", "unauthorized"),
    NotFound: Problem(404, "RESOURCE_NOT_FOUND", "validation"),
    MethodNotAllowed: Problem(405, "METHOD_NOT_ALLOWED", "validation"),
    BodyTimeout: Problem(408, "REQUEST_BODY_TIMEOUT", "validation"),
    TooManyDocuments: Problem(413, "INPUT_TOO_MANY_DOCUMENTS", "validation"),
    BodyTooLarge: Problem(413, "INPUT_BODY_TOO_LARGE", "validation"),
    InvalidInput: Problem(422, "INPUT_VALIDATION_FAILED", "validation"),
    InputTooLong: Problem(422, "INPUT_TOO_LONG", "validation"),
    Overloaded: Problem(429, "RATE_TOKEN_LIMIT_EXCEEDED", "overloaded"),
    ClientClosed: Problem(499, "CLIENT_CLOSED_REQUEST", "validation"),
    InternalError: Problem(500, "INTERNAL_ERROR", "backend"),
    BackendFailure: Problem(500, "INTERNAL_ERROR", "backend"),
    NotReady: Problem(503, "SERVICE_UNAVAILABLE", "unhealthy"),
    RequestTimeout: Problem(504, "SERVICE_TIMEOUT", "backend"),
}

# Statuses that only the framework produces (routing, body parsing) mapped onto the table's errors.
FRAMEWORK_STATUS = {400: InvalidBody, 404: NotFound, 405: MethodNotAllowed, 413: BodyTooLarge}


def as_server_error(exc: Exception) -> ServerError:
    """Library errors become their server counterparts; anything unexpected is an InternalError."""
    if isinstance(exc, ServerError):
        return exc
    if isinstance(exc, InputError):
        return InvalidInput(str(exc))
    if isinstance(exc, BackendError):
        return BackendFailure(str(exc))
    return InternalError(f"internal error ({type(exc).__name__}); this is a bug, please report it")


def problem_of(exc: ServerError) -> Problem:
    return PROBLEMS[type(exc)]


def openapi_responses(model: type, exclude: tuple[int, ...] = ()) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for every status in PROBLEMS, each listing the codes it can carry."""
    by_status: dict[int, list[str]] = {}
    for error, problem in PROBLEMS.items():
        if problem.status not in exclude:
            by_status.setdefault(problem.status, []).append(f"{problem.code} ({error.__name__})")
    return {
        status: {"model": model, "description": "; ".join(sorted(set(codes)))}
        for status, codes in sorted(by_status.items())
    }


class FieldError(BaseModel):
    field: str
    message: str
    type: str
    input: Any = None


class JinaError(BaseModel):
    """Jina's error envelope (also what Cohere's SDK reads as the error body)."""

    detail: str
    code: str
    request_id: str
    errors: list[FieldError] | None = None


class TeiError(BaseModel):
    """TEI's error envelope, used on ``/rerank``."""

    error: str
    error_type: str


def render(exc: ServerError, request_id: str, dialect: str) -> JSONResponse:
    """The error response in the dialect's envelope ("jina" or "tei"), status from PROBLEMS."""
    problem = problem_of(exc)
    if dialect == "tei":
        body: dict[str, Any] = {"error": str(exc), "error_type": problem.tei_type}
    else:
        body = {"detail": str(exc), "code": problem.code, "request_id": request_id}
        if exc.fields:
            body["errors"] = exc.fields
    return JSONResponse(body, status_code=problem.status, headers=exc.headers)


def validation_error(errors: list[dict[str, Any]]) -> ServerError:
    """FastAPI/pydantic validation errors as one InvalidInput whose message names each field."""
    fields = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        fields.append(
            {
                "field": ".".join(location) or "body",
                "message": error.get("msg", "invalid"),
                "type": error.get("type", "value_error"),
                "input": _json_safe(error.get("input")),
            }
        )
    if any(f["type"] == "json_invalid" for f in fields):
        reasons = [str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors]
        exc: ServerError = InvalidBody(
            "the body is not valid JSON: " + "; ".join(reasons) + "; send a JSON object encoded as UTF-8"
        )
    else:
        exc = InvalidInput("; ".join(f"{f['field']}: {f['message']}" for f in fields))
    exc.fields = fields
    return exc


def _json_safe(value: Any) -> Any:
    """The offending input, if it is JSON and short; else a short repr (never echo a whole body)."""
    try:
        if len(json.dumps(value, allow_nan=False).encode("utf-8")) <= 200:
            return value
    except (TypeError, ValueError):  # not JSON, NaN/Infinity, lone surrogates (UnicodeEncodeError)
        pass
    return ascii(value)[:200]
