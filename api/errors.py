"""Every exception becomes problem+json here, once (STYLE rule 4)."""

from __future__ import annotations

import logging
import typing
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from pydantic_core.core_schema import ErrorType
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.allowed_methods import path_methods
from api.cors import STATE_KEY as CORS_STATE_KEY
from api.idempotency import NOTHING_RAN
from api.middleware import current_request_id, request_span
from api.problems import problem_response
from api.query_parameters import REPEATED_PARAMETER, UNKNOWN_PARAMETER
from api.unknown_fields import UNKNOWN_FIELD, suggestion
from core.db import DatabaseUnreachable
from core.errors import (
    DatabaseUnavailable,
    InternalError,
    RedisUnavailable,
    ShopError,
    UnsupportedMediaType,
    ValueOutOfRange,
)
from models.base import CONTROL_CHARACTER, UNION_TAG_MARK

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# Pydantic's own error types, and ours that say a value is malformed as they do (text a
# person typed with a control character in it: models.base.SingleLineText): the code stays
# ``validation_error``. Any other type was raised by one of our validators as a
# ``PydanticCustomError`` whose type is a stable code (e.g. ``invalid_payment_method``).
_MALFORMED = frozenset(typing.get_args(ErrorType)) | {CONTROL_CHARACTER}
# Pydantic asks for an object in Python's words ("a valid dictionary or object to extract
# fields from", or "... instance of ShippingAddressIn", a class of ours): JSON's instead.
_OBJECT_EXPECTED = frozenset({"model_type", "model_attributes_type", "dataclass_type"})


# The errors that name a field or parameter the operation does not take as sent, in the
# order their code wins; each is named in the detail as "unknown field isActive: …".
_NAMING = {
    UNKNOWN_FIELD: "unknown field",
    UNKNOWN_PARAMETER: "unknown parameter",
    REPEATED_PARAMETER: "repeated parameter",
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    # ("body", "shippingAddress", "city") -> "shippingAddress.city" and ("query", "status")
    # -> "status": every source alike; the error's "in" says which one it came from.
    # A tagged union's tag (models.base.union_tag) is not a field the client sent.
    parts = [str(p) for p in loc if not str(p).startswith(UNION_TAG_MARK)]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or (str(loc[0]) if loc else "body")


async def _shop_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShopError)
    if exc.status >= 500:
        log.warning("dependency failure: %s", exc.detail, extra={"code": exc.code})
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        request_id=current_request_id(request),
        extra=exc.extra,
        headers=exc.headers,
    )


def _invalid_json(request: Request, error: dict[str, Any]) -> Response:
    """A body that is not JSON: say so, with the line and column, not a byte offset."""
    loc = error.get("loc", ())
    offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
    # The offset counts characters of the decoded body.
    text = request.scope.get("state", {}).get("raw_body", b"").decode("utf-8", errors="replace")
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    reason = str(error.get("ctx", {}).get("error", "invalid JSON"))
    return problem_response(
        status=HTTPStatus.UNPROCESSABLE_ENTITY,
        code="validation_error",
        title="The body is not valid JSON",
        detail=f"the body is not valid JSON: {reason} at line {line}, column {column}",
        instance=request.url.path,
        request_id=current_request_id(request),
        extra={
            "line": line,
            "column": column,
            "errors": [{"field": "body", "in": "body", "message": reason, "type": "json_invalid"}],
        },
    )


def _error_entry(request: Request, err: Mapping[str, Any]) -> dict[str, str]:
    loc = tuple(err.get("loc", ()))
    entry = {
        "field": _field_path(loc),
        "in": str(loc[0]) if loc else "body",
        "message": err.get("msg", "invalid"),
        "type": err.get("type", "value_error"),
    }
    if entry["type"] in _OBJECT_EXPECTED:
        entry["message"] = "Input should be an object"
    elif entry["type"] == "extra_forbidden":
        # A field the body's model does not have (models.base.RequestModel): named as
        # sent, with the field it was probably meant to be.
        entry["type"] = UNKNOWN_FIELD
        entry["message"] = "not a field of this request" + suggestion(request, loc)
    return entry


def _body_not_read_as_json(errors: typing.Sequence[Any]) -> bool:
    """FastAPI reads a body as JSON only when its Content-Type says JSON (strictly: not
    when it says nothing); any other type leaves the raw bytes for the model to refuse,
    which would read as "Input should be a valid dictionary": the client's mistake is the
    type."""
    return any(
        err.get("loc", ())[:1] == ("body",) and isinstance(err.get("input"), bytes | bytearray)
        for err in errors
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The request's own validation: its endpoint never ran, so its Idempotency-Key keeps
    # no answer (the corrected retry runs).
    setattr(request.state, NOTHING_RAN, True)
    if _body_not_read_as_json(exc.errors()):
        sent = request.headers.get("content-type", "").split(";")[0].strip()
        sent_as = f"not {sent}" if sent else "not without a Content-Type"
        return await _shop_error(
            request,
            UnsupportedMediaType(
                f"the body must be JSON, sent as Content-Type: application/json, {sent_as}"
            ),
        )
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return _invalid_json(
            request, next(e for e in exc.errors() if e.get("type") == "json_invalid")
        )
    errors = [_error_entry(request, err) for err in exc.errors()]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    code, detail = (
        "validation_error",
        f"invalid: {fields}" if fields else "the request is not valid",
    )
    kinds = {e["type"] for e in errors}
    naming = [e for e in errors if e["type"] in _NAMING]
    if naming:
        # A misspelt name usually leaves a required field missing as well: the unknown
        # (or repeated) one is the mistake to fix first, so it gives the code whatever
        # else is wrong.
        code = next(kind for kind in _NAMING if kind in kinds)
        detail = "; ".join(
            [f"{_NAMING[e['type']]} {e['field']}: {e['message']}" for e in naming]
            + [f"{e['field']}: {e['message']}" for e in errors if e not in naming]
        )
    elif len(kinds) == 1 and not kinds <= _MALFORMED:
        # One domain rule broken: its own code, and its message as the detail.
        code = kinds.pop()
        detail = "; ".join(dict.fromkeys(f"{e['field']}: {e['message']}" for e in errors))
    return problem_response(
        status=HTTPStatus.UNPROCESSABLE_ENTITY,
        code=code,
        title="The request is not valid",
        detail=detail,
        instance=request.url.path,
        request_id=current_request_id(request),
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    if status == 404 and detail == "Not Found":
        detail = f"nothing at {request.method} {request.url.path}"
    if status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(path_methods(request.scope)) or headers.get("Allow", "")
    return problem_response(
        status=status,
        code=_HTTP_CODES.get(status, f"http_{status}"),
        title=phrase,
        detail=detail,
        instance=request.url.path,
        request_id=current_request_id(request),
        headers=headers,
    )


async def _data_error(request: Request, exc: Exception) -> Response:
    # A value the database cannot hold (a number out of range, say) is the client's
    # mistake: validation bounds catch most, this catches the rest without a 500.
    log.info("value refused by the database: %s", exc)
    return await _shop_error(
        request,
        ValueOutOfRange("a value in the request is out of the range this field accepts"),
    )


# The "data exceptions" (SQLSTATE class 22) that mean a value does not fit its column:
# 22003 numeric_value_out_of_range (stock added past the integer's range, say), 22008
# datetime_field_overflow, 22001 string_data_right_truncation. Not the rest of the class
# (a division by zero in our SQL is our bug).
_OUT_OF_RANGE = frozenset({"22003", "22008", "22001"})


async def _database_error(request: Request, exc: Exception) -> Response:
    # SQLAlchemy's asyncpg dialect turns the server's data exceptions into its generic
    # DBAPIError, not DataError (which only a value asyncpg itself refuses to send
    # becomes): an overflow in the database's own arithmetic is the client's value too.
    # Any other database error stays a bug of ours: raised on, to the 500 handler.
    assert isinstance(exc, DBAPIError)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _OUT_OF_RANGE:
        return await _data_error(request, exc)
    if exc.connection_invalidated or _transient(sqlstate):
        return await _database_unavailable(request, exc, sqlstate)
    raise exc


# The database errors that say nothing about the request nor our code, only about that
# moment: the same request a moment later goes through. 40001 serialization_failure and
# 40P01 deadlock_detected (the transaction met a concurrent one and was rolled back), 55P03
# lock_not_available and 57014 query_canceled (``lock_timeout``, ``statement_timeout``),
# 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (the server stopping
# or starting), 53300 too_many_connections, and class 08 (the connection broke).
_TRANSIENT = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300"})


def _transient(sqlstate: str | None) -> bool:
    return sqlstate is not None and (sqlstate in _TRANSIENT or sqlstate.startswith("08"))


async def _database_unavailable(
    request: Request, exc: Exception, sqlstate: str | None = None
) -> Response:
    # Not a bug of ours (500) but the database's moment: 503 with Retry-After, a warning
    # with its SQLSTATE for operators, not an unhandled error. Nothing of the request was
    # committed (its one transaction rolled back), so a retry, with the same
    # Idempotency-Key too (a 5xx frees it), runs it again.
    log.warning(
        "database unavailable (sqlstate %s): %s",
        sqlstate or "none",
        exc,
        extra={"path": request.url.path, "sqlstate": sqlstate},
    )
    detail = (
        "the request met a concurrent one in the database and was undone; try again"
        if sqlstate in {"40001", "40P01"}
        else "the database is unavailable for the moment; try again shortly"
    )
    return problem_response(
        status=DatabaseUnavailable.status,
        code=DatabaseUnavailable.code,
        title=DatabaseUnavailable.title,
        detail=detail,
        instance=request.url.path,
        request_id=current_request_id(request),
        headers={"Retry-After": "1"},
    )


async def _database_unreachable(request: Request, exc: Exception) -> Response:
    # A connection that would not open (core.db.DatabaseUnreachable) or none free in the
    # pool in time (SQLAlchemy's TimeoutError): the database's outage too.
    return await _database_unavailable(request, exc)


async def _redis_unavailable(request: Request, exc: Exception) -> Response:
    # Sign-in throttling, rate limits and token revocation read Redis on the request's
    # path: Redis down or not answering is a dependency's outage (503, try again), as
    # /ready reports it, not a bug of ours (500). What Redis said stays in the log.
    log.warning("redis unavailable: %s", exc, extra={"path": request.url.path})
    unavailable = RedisUnavailable(
        "Redis did not answer; try again in a moment", headers={"Retry-After": "1"}
    )
    return await _shop_error(request, unavailable)


async def _unhandled(request: Request, exc: Exception) -> Response:
    request_id = current_request_id(request)
    # Answered outside the request's middleware (Starlette's outermost one): its span is
    # made current again, so that this line and the body carry its trace id.
    with trace.use_span(request_span(request), end_on_exit=False):
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(
            status=InternalError.status,
            code=InternalError.code,
            title=InternalError.title,
            detail=f"something went wrong on our side; quote request id {request_id} to support",
            instance=request.url.path,
            request_id=request_id,
            # Answered outside the CORS middleware too: a browser shows the page this
            # answer only with its CORS headers.
            headers=request.scope.get("state", {}).get(CORS_STATE_KEY),
        )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ShopError, _shop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(DatabaseUnreachable, _database_unreachable)
    app.add_exception_handler(PoolTimeoutError, _database_unreachable)
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
    app.add_exception_handler(Exception, _unhandled)
