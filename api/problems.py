"""RFC 9457 problem+json: every error the API answers has this one shape."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.types import Receive, Scope, Send

from core.errors import (
    DatabaseUnavailable,
    DependencyUnavailable,
    InternalError,
    RedisUnavailable,
    ShopError,
)
from core.logging import request_id_var
from core.telemetry import current_trace_id
from models.base import CamelModel
from services.fulfillment.service import FulfillmentUnavailable
from services.order_cancellation import OrderBeingHandedOver

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


def _error_and_code(error: ProblemSpec) -> tuple[type[ShopError], str]:
    return error if isinstance(error, tuple) else (error, error.code)


def problem_codes(*errors: ProblemSpec) -> dict[int, set[str]]:
    """The stable codes of ``errors``, by HTTP status."""
    codes: dict[int, set[str]] = {}
    for error in errors:
        cls, code = _error_and_code(error)
        codes.setdefault(int(cls.status), set()).add(code)
    return codes


# What any operation can answer that is not the client's fault (``api/errors.py``): a bug
# of ours; the database out of reach, busy or undoing the request for a concurrent one
# (``core.db.DatabaseUnreachable``, a transient SQLSTATE); where the operation reads
# Redis, Redis out of reach; where it calls a workflow, Temporal out of reach. Both of
# those answer the code ``dependency_unavailable``, each shown by an example naming its
# dependency. ``api.openapi`` adds the first two to every operation, Redis' to those
# whose dependencies read it (``raises``).
SERVER_ERROR: ProblemSpec = InternalError
DATABASE_UNAVAILABLE: ProblemSpec = DatabaseUnavailable
REDIS_UNAVAILABLE: ProblemSpec = RedisUnavailable
# A route that calls a workflow (``temporal/clients``): the call could not reach it or had
# no answer in time (``temporal/clients/connection.py``: ``dependency_unavailable``), or
# no connection to Temporal could be opened (``temporal/client.py``:
# ``temporal_unavailable``). A route's own bare ``DependencyUnavailable`` is that call's:
# every route that declares one calls a workflow (Redis' outage is ``RedisUnavailable``).
TEMPORAL_UNAVAILABLE: tuple[ProblemSpec, ...] = (
    DependencyUnavailable,
    (DependencyUnavailable, "temporal_unavailable"),
)
# The codes answered with ``Retry-After`` (the same request goes through a moment later):
# the database's, Redis' and Temporal's outages (``TemporalUnavailable``: a workflow out
# of reach, ``dependency_unavailable``, or no connection, ``temporal_unavailable``), and a
# fulfilment step that gave up for the moment (``fulfillment_unavailable``).
RETRY_AFTER_CODES = frozenset(
    {
        DatabaseUnavailable.code,
        DependencyUnavailable.code,
        "temporal_unavailable",
        FulfillmentUnavailable.code,
        "idempotency_unavailable",
        OrderBeingHandedOver.code,
    }
)

_REQUEST_ID = "req_01JEX5D8E9F0G1H2J3K4M5N6P7"


def _example(
    error: type[ShopError], detail: str, *, code: str | None = None, summary: str | None = None
) -> dict[str, Any]:
    code = code or error.code
    return {
        "summary": summary or error.title,
        "value": {
            "type": f"urn:shopweave:problem:{code}",
            "title": error.title,
            "status": int(error.status),
            "detail": detail,
            "code": code,
            "instance": "/api/orders",
            "requestId": _REQUEST_ID,
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        },
    }


REDIS_EXAMPLE = "dependency_unavailable_redis"
TEMPORAL_EXAMPLE = "dependency_unavailable_temporal"
# An example of each answer above, as the API words it (``api/errors.py``,
# ``temporal/clients/connection.py``, ``temporal/client.py``), by name: a code's own, or
# for ``dependency_unavailable`` one per dependency.
PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {
    InternalError.code: _example(
        InternalError,
        f"something went wrong on our side; quote request id {_REQUEST_ID} to support",
    ),
    DatabaseUnavailable.code: _example(
        DatabaseUnavailable, "the database is unavailable for the moment; try again shortly"
    ),
    REDIS_EXAMPLE: _example(
        DependencyUnavailable,
        "Redis did not answer; try again in a moment",
        summary="Redis did not answer",
    ),
    TEMPORAL_EXAMPLE: _example(
        DependencyUnavailable,
        "order ord_01JD3K7Q8MXYZ cannot be reached; try again",
        summary="Temporal could not reach the workflow, or it did not answer in time",
    ),
    "temporal_unavailable": _example(
        DependencyUnavailable,
        "Temporal at temporal:7233 is not reachable: Failed client connect: Server "
        "connection error: tonic::transport::Error(Transport, ConnectError(...))",
        code="temporal_unavailable",
        summary="No connection to Temporal could be opened",
    ),
    # What a fulfilment action answers when the workflow's step gave up
    # (``workflows.fulfillment_parcels.as_refusal``).
    FulfillmentUnavailable.code: _example(
        FulfillmentUnavailable, "the fulfilment step could not complete; try again"
    ),
}


def problem_examples(*errors: ProblemSpec) -> dict[int, set[str]]:
    """The names of the examples (``PROBLEM_EXAMPLES``) of ``errors``, by HTTP status."""
    names: dict[int, set[str]] = {}
    for error in errors:
        cls, code = _error_and_code(error)
        if code == DependencyUnavailable.code:
            name = REDIS_EXAMPLE if issubclass(cls, RedisUnavailable) else TEMPORAL_EXAMPLE
        elif code in PROBLEM_EXAMPLES:
            name = code
        else:
            continue
        names.setdefault(int(cls.status), set()).add(name)
    return names


def problem_entry(status: int, codes: set[str], examples: set[str] | None = None) -> dict[str, Any]:
    """One OpenAPI response: problem+json whose ``code`` is one of ``codes``, with the
    examples ``examples`` names (``PROBLEM_EXAMPLES``) of those codes, and
    ``Retry-After`` where one of ``RETRY_AFTER_CODES`` sends it."""
    listed = ", ".join(f"`{code}`" for code in sorted(codes))
    media: dict[str, Any] = {
        "schema": {
            "allOf": [
                {"$ref": PROBLEM_REF},
                {"properties": {"code": {"enum": sorted(codes)}}},
            ]
        }
    }
    shown = {
        name: PROBLEM_EXAMPLES[name]
        for name in sorted(examples or ())
        if PROBLEM_EXAMPLES[name]["value"]["code"] in codes
    }
    if shown:
        media["examples"] = shown
    entry: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: `code` is one of {listed}",
        "content": {PROBLEM_MEDIA_TYPE: media},
    }
    retried = sorted(codes & RETRY_AFTER_CODES)
    if retried:
        named = " and ".join(f"`{code}`" for code in retried)
        entry["headers"] = {
            "Retry-After": {
                "description": f"With {named}: seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return entry


def _media(entry: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = entry.get("content", {}).get(PROBLEM_MEDIA_TYPE, {})
    return media


def entry_codes(entry: dict[str, Any]) -> set[str]:
    """The codes a response made by ``problem_entry`` lists (none for any other)."""
    for part in _media(entry).get("schema", {}).get("allOf", []):
        enum = part.get("properties", {}).get("code", {}).get("enum")
        if enum is not None:
            return set(enum)
    return set()


def entry_examples(entry: dict[str, Any]) -> set[str]:
    """The names of the examples a response made by ``problem_entry`` shows."""
    return set(_media(entry).get("examples", {})) & set(PROBLEM_EXAMPLES)


def problem_responses(*errors: ProblemSpec) -> Responses:
    """OpenAPI ``responses=`` entries for the errors an endpoint raises, by status, each
    problem+json with its ``code`` values. What every endpoint of a kind can answer
    (validation, authentication, staff-only, idempotency keys) is added by
    ``api.openapi``, so routes list only their own errors."""
    examples = problem_examples(*errors)
    return {
        status: problem_entry(status, codes, examples.get(status))
        for status, codes in problem_codes(*errors).items()
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
