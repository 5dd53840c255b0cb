"""One error body everywhere: `{"error": "<code>", "detail": "<message>"}`, except under
a path prefix that `install` was given another shape for (the CompreFace-compatible API
under /api/v1/ answers in CompreFace's `{"message", "code"}`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.core.errors import FacesvcError, RetryLater

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error: str = Field(description="Stable machine-readable code, e.g. `no_face`.")
    detail: str = Field(description="Human-readable explanation.")


# A 400 from the framework (a body it could not parse) is answered as our 422.
_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "image_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


ErrorShape = Callable[[int, str, str, Exception | None], tuple[int, dict[str, Any]]]
"""(status, our code, detail, the exception if any) -> (status, body) of another surface."""


def _response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    exc: Exception | None = None,
) -> JSONResponse:
    shapes: dict[str, ErrorShape] = getattr(request.app.state, "error_shapes", {})
    for prefix, shape in shapes.items():
        if request.url.path.startswith(prefix):
            status, body = shape(status, code, detail, exc)
            return JSONResponse(body, status_code=status, headers=headers)
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


# Where pydantic says an error is; the field's name alone is what a caller needs.
_SOURCES = ("body", "query", "path", "header", "cookie")


def describe(errors: Any) -> str:
    """The one style of a validation detail, for framework and form errors alike:
    `field: message` (lower case, no "Value error, "), joined by "; "."""
    parts = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in _SOURCES:
            loc = loc[1:]
        msg = str(err.get("msg")).removeprefix("Value error, ")
        if msg[1:2].islower():  # "Input should ..." -> "input should ...", not "jSON ..."
            msg = msg[:1].lower() + msg[1:]
        where = ".".join(str(p) for p in loc)
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


async def facesvc_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FacesvcError)
    headers = {"WWW-Authenticate": "APIKey"} if exc.status_code == 401 else None
    if isinstance(exc, RetryLater):
        headers = {"Retry-After": str(exc.retry_after)}
    return _response(request, exc.status_code, exc.code, exc.detail, headers, exc)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _response(request, 422, "validation_error", describe(exc.errors()))


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        return _response(request, 422, "validation_error", "the request could not be parsed")
    code = _HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers or {}) or None
    return _response(request, exc.status_code, code, str(exc.detail), headers)


async def database_busy_handler(request: Request, exc: Exception) -> JSONResponse:
    """No pooled connection came free in time, or the database cannot be reached: a
    passing condition, answered like an overloaded pool rather than as a 500."""
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
    return _response(
        request, 503, "unavailable", "the database is busy or unreachable", {"Retry-After": "1"}
    )


async def client_disconnected_handler(request: Request, _: Exception) -> Response:
    """The client went away while its body was read: nobody is left to answer."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)  # nginx's code for it; never reaches the client


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _response(request, 500, "internal_error", "internal server error")


def install(app: FastAPI, shapes: dict[str, ErrorShape] | None = None) -> None:
    """`shapes`: path prefix -> the error body of the surface mounted there."""
    app.state.error_shapes = dict(shapes or {})
    app.add_exception_handler(FacesvcError, facesvc_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(ClientDisconnect, client_disconnected_handler)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, database_busy_handler)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, database_busy_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)


def _doc(description: str, code: str | None = None, detail: str | None = None) -> dict[str, Any]:
    """A documented error status, with an example body as the service answers it; without
    `code` and `detail`, the first `code` of the description and its text after ": "."""
    if code is None:
        found = re.search(r"`([a-z_]+)`", description)
        code = found.group(1) if found else "error"
    if detail is None:
        detail = description.split(": ", 1)[-1].replace("`", "")
    example = {"error": code, "detail": detail}
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": example}},
    }


# Each route lists only the statuses it can answer: `responses(...)` merges COMMON (any
# keyed route) with the groups a route needs. A route with path or query parameters
# adds PARAMS, a route that reads a body BODY (or FACES, which includes it); a route
# with neither never answers 413, 415 nor 422.
COMMON: dict[int | str, dict[str, Any]] = {
    401: _doc(
        "`unauthorized`: missing or unknown API key", "unauthorized", "missing X-API-Key header"
    ),
    403: _doc(
        "`forbidden`: the key lacks the scope this route needs",
        "forbidden",
        "this API key lacks the 'enroll' scope",
    ),
    500: _doc("`internal_error`", "internal_error", "internal server error"),
}
PARAMS: dict[int | str, dict[str, Any]] = {
    422: _doc(
        "`validation_error`: a bad path or query parameter",
        "validation_error",
        "limit: input should be less than or equal to 500",
    )
}
BODY: dict[int | str, dict[str, Any]] = {
    413: _doc(
        "`image_too_large`: request body or image over the configured limit",
        "image_too_large",
        "the request body exceeds 26732210 bytes",
    ),
    415: _doc(
        "`unsupported_media_type`: send multipart/form-data or application/json",
        "unsupported_media_type",
        "content type 'text/plain' is not supported; send multipart/form-data or "
        "application/json with base64 images",
    ),
    422: _doc(
        "`validation_error`, `invalid_image`: bad fields or an undecodable image",
        "validation_error",
        "name: string should have at least 1 character",
    ),
}
FACES: dict[int | str, dict[str, Any]] = {
    **BODY,
    422: _doc(
        "`validation_error`, `invalid_image`, `no_face`, `multiple_faces`: bad fields, an "
        "undecodable image, no face, or several faces where one is needed",
        "no_face",
        "no face was found in the image",
    ),
    503: _doc(
        "`model_unavailable`; `overloaded` (inference queue full) or `inference_failed` "
        "(a worker crashed), `timeout` (the request's deadline passed before its "
        "inference ran), all with `Retry-After`",
        "overloaded",
        "64 requests are already waiting for inference",
    ),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _doc(
        "`not_found`: unknown id, or unknown collection",
        "not_found",
        "no identity with id 3f0c1e52-6a8b-4f0e-9d3c-5b7a2e1f4c90",
    )
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _doc(
        "`conflict` (external_id taken) or `model_mismatch` (gallery of another model)",
        "conflict",
        "external_id 'emp-1042' is already enrolled",
    )
}
PUBLIC: dict[int | str, dict[str, Any]] = {
    500: _doc("`internal_error`", "internal_error", "internal server error")
}


def responses(*groups: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """COMMON and `groups`, later groups winning; a 422 of PARAMS and one of BODY merge
    into one entry that names both causes."""
    merged: dict[int | str, dict[str, Any]] = {}
    for group in (COMMON, *groups):
        for status, entry in group.items():
            if status == 422 and 422 in merged and entry is not merged[422]:
                entry = {**entry, "description": _joined(merged[422], entry)}
            merged[status] = entry
    return merged


def _joined(first: dict[str, Any], second: dict[str, Any]) -> str:
    a, b = str(first["description"]), str(second["description"])
    return a if b in a else b if a in b else f"{a}; {b}"
