"""The OpenAPI document tells the truth: every status an operation can answer, each
problem+json with its stable ``code`` values.

Routes declare their own errors (``problem_responses``); what whole kinds of operations
can answer is added here, from the code that answers it: what no client causes (500
``internal_error``; 503 ``database_unavailable`` with ``Retry-After``, unless the endpoint
is marked ``no_database_outage``), the errors their dependencies raise (``@raises`` on
``CurrentUser``, ``StaffUser``…; the Redis client and the token's revocation check: 503
``dependency_unavailable`` with ``Retry-After``, its example naming Redis, beside a route's
own Temporal one), request validation (422; a NUL
character anywhere is refused by ``api/guards.py`` for every operation), unreadable,
non-JSON or oversized bodies (400, 422, 413) where there is a body, a field the body
does not know (422 ``unknown_field``) where its model refuses one, a query parameter
the operation does not declare (422 ``unknown_parameter``) or a scalar one repeated
(``repeated_parameter``) where its query is checked (``api/query_parameters.py``), a
body of another Content-Type than JSON (415) where FastAPI reads it into a model, and
``Idempotency-Key`` on creating POSTs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from api.examples import add_examples
from api.idempotency import (
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_PROBLEMS,
    LEASE_SECONDS,
    applies_to,
)
from api.problems import (
    DATABASE_UNAVAILABLE,
    PROBLEM_REF,
    SERVER_ERROR,
    Problem,
    ProblemSpec,
    answers_database_outage,
    entry_codes,
    entry_examples,
    problem_codes,
    problem_entry,
    problem_examples,
    raised_by,
)
from api.query_parameters import (
    REPEATED_PARAMETER,
    UNKNOWN_PARAMETER,
    QueryRules,
    checks_query,
)
from api.security import token_optional
from api.unknown_fields import UNKNOWN_FIELD, refuses_unknown_fields
from core.errors import (
    PayloadTooLarge,
    ShopError,
    UnsupportedMediaType,
    ValidationFailed,
    ValueOutOfRange,
)

# Any operation: a NUL character in the path or query (api/guards.py).
ANY_REQUEST: tuple[ProblemSpec, ...] = (ValidationFailed,)
# Any operation with input: the request does not match its schema, or a value passes the
# schema but not the database (a number out of a column's range).
INVALID_INPUT: tuple[ProblemSpec, ...] = (ValidationFailed, ValueOutOfRange)
# A body that cannot be read (not UTF-8, say) or is over MAX_BODY_BYTES (api/guards.py);
# one that is not JSON answers 422 validation_error.
UNREADABLE_BODY: tuple[ProblemSpec, ...] = (
    ShopError,
    PayloadTooLarge,
)
# A body that refuses fields it does not know (models.base.RequestModel).
UNKNOWN_FIELDS: tuple[ProblemSpec, ...] = ((ValidationFailed, UNKNOWN_FIELD),)
# A body FastAPI reads into a model, sent with another Content-Type than JSON
# (api/errors.py); the webhooks read their raw bytes and do not answer it.
NOT_JSON_BODY: tuple[ProblemSpec, ...] = (UnsupportedMediaType,)
# FastAPI's own 422 schema, which our problem+json replaces.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template=_REF_TEMPLATE)
        # Routers are included lazily (FastAPI 0.16x): walk them as the generator does.
        for route in iter_route_contexts(app.routes):
            path = route.path_format
            if isinstance(route.original_route, APIRoute) and route.include_in_schema and path:
                for method in route.methods or ():
                    operation = schema["paths"][path][method.lower()]
                    _declare(operation, route.dependant, path, method)
                    add_examples(operation, path, method, route.original_route)
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_REF_TEMPLATE = PROBLEM_REF.replace("Problem", "{model}")


def _calls(dependant: Dependant) -> list[Callable[..., Any]]:
    """Every dependency of an endpoint, however deep."""
    found: list[Callable[..., Any]] = []
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            found.append(dependency.call)
        found.extend(_calls(dependency))
    return found


def _declare(operation: dict[str, Any], dependant: Dependant, path: str, method: str) -> None:
    calls = _calls(dependant)
    errors = [
        *ANY_REQUEST,
        SERVER_ERROR,
        *(error for call in calls for error in raised_by(call)),
    ]
    if dependant.call is None or answers_database_outage(dependant.call):
        errors.append(DATABASE_UNAVAILABLE)
    if operation.get("security") and token_optional(calls):
        # OptionalUser alone: the bearer token may be left out altogether.
        operation["security"] = [*operation["security"], {}]
    has_body = "requestBody" in operation
    if has_body or operation.get("parameters"):
        errors.extend(INVALID_INPUT)
    if has_body:
        errors.extend(UNREADABLE_BODY)
    if has_body and refuses_unknown_fields(dependant):
        errors.extend(UNKNOWN_FIELDS)
    rules = QueryRules.of(dependant) if checks_query(calls) else None
    if rules is not None:
        errors.append((ValidationFailed, UNKNOWN_PARAMETER))
        if rules.single:
            errors.append((ValidationFailed, REPEATED_PARAMETER))
    if dependant.body_params:
        errors.extend(NOT_JSON_BODY)
    if applies_to(method, path):
        errors.extend(IDEMPOTENCY_PROBLEMS)
        operation.setdefault("parameters", []).append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeat a request safely: the same key and request get the "
                "first answer again (`Idempotent-Replayed: true`); kept 24 hours.",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            }
        )
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "422" in responses and not entry_codes(responses["422"]):
        del responses["422"]  # FastAPI's HTTPValidationError: we answer problem+json
    declared = {int(status): entry_codes(entry) for status, entry in responses.items()}
    shown = {int(status): entry_examples(entry) for status, entry in responses.items()}
    for status, codes in problem_codes(*errors).items():
        declared[status] = declared.get(status, set()) | codes
    for status, names in problem_examples(*errors).items():
        shown[status] = shown.get(status, set()) | names
    for status, codes in declared.items():
        # Rebuilt whole: FastAPI adds an empty application/json beside problem+json.
        if codes:
            responses[str(status)] = problem_entry(status, codes, shown.get(status))
    if applies_to(method, path):
        responses["409"]["headers"] = {
            "Retry-After": {
                "description": "With `idempotency_key_in_progress`: seconds until the first "
                "request's hold on the key lapses at the latest (renewed while that request "
                f"runs, the hold of an API process that died lapses within {LEASE_SECONDS:g} s)",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    operation["responses"] = dict(sorted(responses.items()))
