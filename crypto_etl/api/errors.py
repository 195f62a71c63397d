"""One error body for the whole API ({"error": {status, code, message, details}}), whatever went
wrong: an unknown route or coin, a bad parameter, a missing API key, the database, or a bug."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from crypto_etl.api.schemas import ErrorDetail, ErrorInfo, ErrorResponse
from crypto_etl.errors import DatabaseError, first_line

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    422: "validation_error",
    500: "internal_error",
    503: "database_unavailable",
}
DATABASE_DOWN = "the database is unavailable or has no schema yet; GET /ready tells which"


class InvalidParameter(Exception):
    """A parameter that passed its own checks but not a check across parameters (422)."""

    def __init__(self, field: str, message: str, location: str = "query") -> None:
        super().__init__(f"{field}: {message}")
        self.detail = ErrorDetail(field=field, location=location, message=message)


def error_response(
    status: int,
    message: str,
    details: Iterable[ErrorDetail] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    info = ErrorInfo(
        status=status, code=CODES.get(status, "error"), message=message, details=list(details)
    )
    return JSONResponse(ErrorResponse(error=info).model_dump(), status, headers=headers)


def _field(loc: tuple) -> tuple[str | None, str | None]:
    """("query", "limit") -> ("limit", "query"); nested locations are joined with dots."""
    location = str(loc[0]) if loc else None
    field = ".".join(str(part) for part in loc[1:]) or location
    return field, location


async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    details = []
    for err in exc.errors():
        field, location = _field(tuple(err.get("loc", ())))
        details.append(ErrorDetail(field=field, location=location, message=err["msg"]))
    message = "; ".join(f"{d.field}: {d.message}" for d in details) or "invalid request"
    return error_response(422, message, details)


async def _invalid_parameter(_request: Request, exc: InvalidParameter) -> JSONResponse:
    return error_response(422, str(exc), [exc.detail])


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: database error: %s", request.method, request.url.path, first_line(exc))
    return error_response(503, DATABASE_DOWN)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "unexpected server error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(DatabaseError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


# The error statuses every API route may answer, for the OpenAPI description.
ERROR_RESPONSES: dict[int | str, dict] = {
    422: {"model": ErrorResponse, "description": "A parameter is invalid; the body names it"},
    503: {"model": ErrorResponse, "description": "The database is unavailable"},
    500: {"model": ErrorResponse, "description": "Unexpected server error"},
}
