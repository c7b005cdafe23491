"""RFC 9457 problem+json: every error the API answers has this one shape."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.types import Receive, Scope, Send

from core.errors import DatabaseUnavailable, DependencyUnavailable, InternalError, ShopError
from core.logging import request_id_var
from core.telemetry import current_trace_id
from models.base import CamelModel

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"


class Problem(CamelModel):
    """An error. ``code`` is stable and meant for machines; ``detail`` is for people."""

    type: str = Field(examples=["urn:shopweave:problem:not_found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No product prod_01JD3K7Q8M… exists"])
    code: str = Field(examples=["not_found"])
    instance: str | None = Field(default=None, examples=["/api/products/prod_01JD3K7Q8M"])
    request_id: str | None = Field(default=None, examples=["req_01JD3K7Q8MXYZ"])
    trace_id: str | None = Field(
        default=None,
        description=(
            "The OpenTelemetry trace id of the request (32 hex digits): the client's, "
            "when it sent a W3C `traceparent`, else one the API started."
        ),
        examples=["4bf92f3577b34da6a3ce929d0e0e4736"],
    )

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None,
    request_id: str | None,
    trace_id: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; ``trace_id`` defaults to the current span's."""
    body: dict[str, Any] = {
        "type": f"urn:shopweave:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "requestId": request_id,
        "traceId": trace_id or current_trace_id(),
    }
    for key, value in (extra or {}).items():
        body.setdefault(to_camel(key) if "_" in key else key, value)
    all_headers = dict(headers or {})
    if request_id:
        all_headers.setdefault("X-Request-ID", request_id)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers
    )


async def send_problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer a problem from pure ASGI middleware (before any route or handler runs)."""
    request_id = scope.get("state", {}).get("request_id") or request_id_var.get()
    response = problem_response(
        status=status,
        code=code,
        title=title,
        detail=detail,
        instance=scope["path"].replace("\x00", "\\u0000"),
        request_id=request_id,
        extra=extra,
        headers=headers,
    )
    await response(scope, receive, send)


# An error a route can answer: its class (status and default code), or its class with
# the code given where it is raised (``(Conflict, "slug_taken")``).
ProblemSpec = type[ShopError] | tuple[type[ShopError], str]
Responses = dict[int | str, dict[str, Any]]


def problem_codes(*errors: ProblemSpec) -> dict[int, set[str]]:
    """The stable codes of ``errors``, by HTTP status."""
    codes: dict[int, set[str]] = {}
    for error in errors:
        cls, code = error if isinstance(error, tuple) else (error, error.code)
        codes.setdefault(int(cls.status), set()).add(code)
    return codes


# What any operation can answer that is not the client's fault (``api/errors.py``): a bug
# of ours; the database out of reach, busy or undoing the request for a concurrent one
# (``core.db.DatabaseUnreachable``, a transient SQLSTATE); and, where the operation reads
# Redis, Redis out of reach (the code ``dependency_unavailable``). ``api.openapi`` adds
# them to every operation.
SERVER_ERROR: ProblemSpec = InternalError
DATABASE_UNAVAILABLE: ProblemSpec = DatabaseUnavailable
REDIS_UNAVAILABLE: ProblemSpec = DependencyUnavailable
# The codes answered with ``Retry-After`` (the same request goes through a moment later).
RETRY_AFTER_CODES = frozenset(
    {DatabaseUnavailable.code, DependencyUnavailable.code, "idempotency_unavailable"}
)

_REQUEST_ID = "req_01JEX5D8E9F0G1H2J3K4M5N6P7"


def _example(error: type[ShopError], detail: str) -> dict[str, Any]:
    return {
        "summary": error.title,
        "value": {
            "type": f"urn:shopweave:problem:{error.code}",
            "title": error.title,
            "status": int(error.status),
            "detail": detail,
            "code": error.code,
            "instance": "/api/orders",
            "requestId": _REQUEST_ID,
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        },
    }


# An example of each answer above, as ``api/errors.py`` words it.
PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {
    InternalError.code: _example(
        InternalError,
        f"something went wrong on our side; quote request id {_REQUEST_ID} to support",
    ),
    DatabaseUnavailable.code: _example(
        DatabaseUnavailable, "the database is unavailable for the moment; try again shortly"
    ),
    DependencyUnavailable.code: _example(
        DependencyUnavailable, "Redis did not answer; try again in a moment"
    ),
}


def problem_entry(status: int, codes: set[str]) -> dict[str, Any]:
    """One OpenAPI response: problem+json whose ``code`` is one of ``codes``, with an
    example of each code ``PROBLEM_EXAMPLES`` has, and ``Retry-After`` where one of
    ``RETRY_AFTER_CODES`` sends it."""
    listed = ", ".join(f"`{code}`" for code in sorted(codes))
    media: dict[str, Any] = {
        "schema": {
            "allOf": [
                {"$ref": PROBLEM_REF},
                {"properties": {"code": {"enum": sorted(codes)}}},
            ]
        }
    }
    examples = {code: PROBLEM_EXAMPLES[code] for code in sorted(codes) if code in PROBLEM_EXAMPLES}
    if examples:
        media["examples"] = examples
    entry: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: `code` is one of {listed}",
        "content": {PROBLEM_MEDIA_TYPE: media},
    }
    retried = sorted(codes & RETRY_AFTER_CODES)
    if retried:
        named = " and ".join(f"`{code}`" for code in retried)
        entry["headers"] = {
            "Retry-After": {
                "description": f"With {named}: seconds to wait before trying again "
                "(`dependency_unavailable` sends it when Redis did not answer)",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return entry


def entry_codes(entry: dict[str, Any]) -> set[str]:
    """The codes a response made by ``problem_entry`` lists (none for any other)."""
    schema = entry.get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("schema", {})
    for part in schema.get("allOf", []):
        enum = part.get("properties", {}).get("code", {}).get("enum")
        if enum is not None:
            return set(enum)
    return set()


def problem_responses(*errors: ProblemSpec) -> Responses:
    """OpenAPI ``responses=`` entries for the errors an endpoint raises, by status, each
    problem+json with its ``code`` values. What every endpoint of a kind can answer
    (validation, authentication, staff-only, idempotency keys) is added by
    ``api.openapi``, so routes list only their own errors."""
    return {
        status: problem_entry(status, codes) for status, codes in problem_codes(*errors).items()
    }


_RAISED_BY: dict[Callable[..., Any], tuple[ProblemSpec, ...]] = {}
F = TypeVar("F", bound=Callable[..., Any])


def raises(*errors: ProblemSpec) -> Callable[[F], F]:
    """Mark a dependency with the errors it can raise: every endpoint that depends on it
    declares them in the OpenAPI document (see ``api.openapi``)."""

    def mark(dependency: F) -> F:
        _RAISED_BY[dependency] = errors
        return dependency

    return mark


def raised_by(dependency: Callable[..., Any]) -> tuple[ProblemSpec, ...]:
    return _RAISED_BY.get(dependency, ())


_NO_DATABASE_OUTAGE: set[Callable[..., Any]] = set()


def no_database_outage(endpoint: F) -> F:
    """Mark an endpoint that never answers ``database_unavailable``: it reads no database
    on its request's path, nor do its dependencies, or it answers an outage in its own
    words (``/ready``: 503 ``not_ready``). Its OpenAPI entry leaves the code out."""
    _NO_DATABASE_OUTAGE.add(endpoint)
    return endpoint


def answers_database_outage(endpoint: Callable[..., Any]) -> bool:
    return endpoint not in _NO_DATABASE_OUTAGE
