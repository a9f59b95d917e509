"""Every error as JSON `{"error": kind, "message": text}` with a status code that says what happened."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from coinfleet.api.auth import Unauthorized
from coinfleet.errors import (
    CoinfleetError,
    ConfigError,
    Conflict,
    DatabaseError,
    DataFormatError,
    InvalidRequest,
    ModelLoadError,
    NotFound,
    WebhookRefused,
)

log = structlog.get_logger(__name__)

#: status code of each error coinfleet raises on purpose (the most specific class wins)
STATUS: dict[type[CoinfleetError], int] = {
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    InvalidRequest: 422,
    ConfigError: 422,
    DataFormatError: 422,
    ModelLoadError: 422,
    WebhookRefused: 422,
    DatabaseError: 503,
}


class ErrorBody(BaseModel):
    """What every failed request answers."""

    error: str  #: the kind of error, e.g. "not_found", "unauthorized", "invalid_request"
    message: str  #: what was wrong and what to do
    details: list[dict[str, Any]] | None = None  #: per-field problems of a request that failed validation


def status_of(exc: CoinfleetError) -> int:
    """The HTTP status for a coinfleet error (400 for kinds without their own)."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


_KIND = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 422: "invalid_request", 503: "unavailable"}  # fmt: skip


def error_response(status: int, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    """A JSON error with the kind derived from the status."""
    body = ErrorBody(error=_KIND.get(status, "error"), message=message, details=details)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


async def _coinfleet_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CoinfleetError)
    return error_response(status_of(exc), str(exc))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = jsonable_encoder(
        [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
    )
    first = details[0] if details else {"loc": [], "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"])
    return error_response(422, f"{where}: {first['msg']}", details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI's answer to a body it cannot parse (e.g. not UTF-8): a bad body
        return error_response(422, f"the request body could not be read: {exc.detail}")
    return error_response(exc.status_code, str(exc.detail))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("api_unexpected_error", error=type(exc).__name__)
    return error_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(CoinfleetError, _coinfleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def _documented(meaning: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": meaning}


#: the error answers every /api route may give, for the published schema
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _documented("the bearer token is missing or wrong"),
    404: _documented("the model, coin or alert named does not exist"),
    409: _documented("the request does not fit the current state (name taken, nothing to resume)"),
    422: _documented("a value in the path, query or body is invalid; the message says which"),
    503: _documented("the database cannot be reached"),
}
