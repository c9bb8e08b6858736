"""The service's refusals: one line of JSON each, ``{"error": "..."}``, and how the API
description documents them.

Every way a request can fail maps to a status here, in :func:`add_error_replies`: a
:class:`ServeError` carries its own (400, 413, 415), any other
:class:`~convnets.errors.ConvnetsError` (a bad image, class name, patch or stride) is a
400, FastAPI's query checks are a 422 and an unknown route or method a 404 or 405.
:func:`error_responses` describes the same answers for ``/openapi.json``, so that what a
client generated from it expects is what the server does.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConvnetsError

__all__ = ["ServeError", "BodyTooLarge", "UnsupportedMediaType", "ErrorReply",
           "add_error_replies", "error_responses", "refusal"]


class ServeError(ConvnetsError):
    """A request the server refuses; ``status`` is its HTTP status code."""

    status = 400


class BodyTooLarge(ServeError):
    status = 413


class UnsupportedMediaType(ServeError):
    status = 415


class ErrorReply(BaseModel):
    """Every refusal's body."""

    error: str = Field(description="what was wrong with the request, in one line")


# What each refusal status means for a route that reads an image; the API description's words.
_MEANINGS = {
    400: "the body is not an image that can be read (empty, truncated, not an image, more "
         "pixels than the server's limit), a multipart form without a file, or an option "
         "that does not fit the image or the model",
    413: "the body is larger than the server's limit (--max-bytes)",
    415: "the Content-Type is neither an image/* type, application/octet-stream nor "
         "multipart/form-data",
    422: "a query parameter of the wrong type or out of its range",
}


def error_responses(*statuses: int) -> dict[int, dict]:
    """FastAPI ``responses=`` for the refusals ``statuses``: each an :class:`ErrorReply`."""
    return {s: {"model": ErrorReply, "description": _MEANINGS[s]} for s in statuses}


def refusal(status: int, text: str, *, close: bool = False,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """The reply ``{"error": text}`` with ``status``; ``close`` ends the connection (the
    rest of a body too large is not read)."""
    headers = {**(headers or {}), **({"Connection": "close"} if close else {})}
    return JSONResponse({"error": text}, status_code=status, headers=headers or None)


async def _refused(request: Request, err: ServeError) -> JSONResponse:
    return refusal(err.status, str(err), close=err.status == 413)


async def _bad_input(request: Request, err: ConvnetsError) -> JSONResponse:
    return refusal(400, str(err))


async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    text = err.detail
    if err.status_code == 404 and text == "Not Found":
        text = f"no route {request.method} {request.url.path} (see /docs)"
    elif err.status_code == 405:
        text = f"{request.method} is not allowed on {request.url.path} (see /docs)"
    return refusal(err.status_code, str(text), headers=err.headers)


async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return refusal(422, f"{where}: {first.get('msg', 'invalid')}")


def add_error_replies(app: FastAPI) -> None:
    """Answer every refusal of ``app`` with one line of JSON; see the module docstring."""
    app.add_exception_handler(ServeError, _refused)
    app.add_exception_handler(ConvnetsError, _bad_input)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
