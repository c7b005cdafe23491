"""RFC 9457 problem+json: every error the API answers has this one shape."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.types import Receive, Scope, Send

from core.errors import ShopError
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


def problem_entry(status: int, codes: set[str]) -> dict[str, Any]:
    """One OpenAPI response: problem+json whose ``code`` is one of ``codes``."""
    listed = ", ".join(f"`{code}`" for code in sorted(codes))
    return {
        "description": f"{HTTPStatus(status).phrase}: `code` is one of {listed}",
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": {
                    "allOf": [
                        {"$ref": PROBLEM_REF},
                        {"properties": {"code": {"enum": sorted(codes)}}},
                    ]
                }
            }
        },
    }


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
