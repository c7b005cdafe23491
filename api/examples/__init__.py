"""A success example for every operation, shown in /api/docs beside the schema.

One module per area, each with ``RESPONSES`` (``"METHOD /path"`` → status → the body
the API sends) and ``REQUESTS`` (``"METHOD /path"`` → a body it accepts), built from
shared pieces so that the order in one example is the same order in the next. An
operation whose router declares its examples inline (webhooks, notifications) keeps
them there. ``tests/api/test_openapi_examples.py`` holds every example to its route's
response or body model, so an example cannot drift from what the API sends.
"""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute

from api.examples import (
    analytics,
    carts,
    catalog,
    events,
    fulfillments,
    notifications,
    orders,
    pricing,
    returns,
    system,
    users,
)

_MODULES = (
    analytics,
    carts,
    catalog,
    events,
    fulfillments,
    notifications,
    orders,
    pricing,
    returns,
    system,
    users,
)
RESPONSE_EXAMPLES: dict[str, dict[int, object]] = {
    key: value for module in _MODULES for key, value in module.RESPONSES.items()
}
REQUEST_EXAMPLES: dict[str, object] = {
    key: value for module in _MODULES for key, value in module.REQUESTS.items()
}

_JSON = "application/json"


def add_examples(operation: dict[str, Any], path: str, method: str, route: APIRoute) -> None:
    """Put the operation's examples into its OpenAPI entry, beside any it declares.

    FastAPI writes the document with ``exclude_none``, which drops every null from an
    example the route declares (a webhook endpoint's ``disabledAt: null``, a PATCH that
    clears a field), so those are put back as written: the route's ``responses=``, its
    body's ``openapi_examples`` and its ``openapi_extra`` request body."""
    for status, response in route.responses.items():
        example = response.get("content", {}).get(_JSON, {}).get("example")
        if example is not None:
            operation["responses"][str(status)]["content"][_JSON]["example"] = example
    _restore_request_examples(operation, route)
    key = f"{method.upper()} {path}"
    for status, example in RESPONSE_EXAMPLES.get(key, {}).items():
        media = operation["responses"][str(status)].setdefault("content", {})
        media.setdefault(_JSON, {}).setdefault("example", example)
    if key in REQUEST_EXAMPLES and "requestBody" in operation:
        body = operation["requestBody"]["content"].setdefault(_JSON, {})
        body.setdefault("example", REQUEST_EXAMPLES[key])


def _restore_request_examples(operation: dict[str, Any], route: APIRoute) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    field_info = route.body_field.field_info if route.body_field else None
    named = getattr(field_info, "openapi_examples", None)  # a Body()'s (FastAPI)
    if named:
        for media in content.values():
            if "examples" in media:
                media["examples"] = jsonable_encoder(named)
    declared = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    for media_type, media in declared.items():
        for field in ("example", "examples"):
            if field in media and media_type in content:
                content[media_type][field] = jsonable_encoder(media[field])
