"""A success example for every operation, shown in /api/docs beside the schema.

One module per area, each with ``RESPONSES`` (``"METHOD /path"`` → status → the body
the API sends) and ``REQUESTS`` (``"METHOD /path"`` → a body it accepts), built from
shared pieces so that the order in one example is the same order in the next. An
operation whose router declares its examples inline (webhooks, notifications) keeps
them there. ``tests/api/test_openapi_examples.py`` holds every example to its route's
response or body model, so an example cannot drift from what the API sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def add_examples(
    operation: dict[str, Any], path: str, method: str, declared: Mapping[int | str, Any]
) -> None:
    """Put the operation's examples into its OpenAPI entry, beside any it declares.

    ``declared`` is the route's own ``responses=``: FastAPI writes the document with
    ``exclude_none``, which drops every null from an example declared there (a webhook
    endpoint's ``disabledAt: null``), so those are put back as written."""
    for status, response in declared.items():
        example = response.get("content", {}).get(_JSON, {}).get("example")
        if example is not None:
            operation["responses"][str(status)]["content"][_JSON]["example"] = example
    key = f"{method.upper()} {path}"
    for status, example in RESPONSE_EXAMPLES.get(key, {}).items():
        media = operation["responses"][str(status)].setdefault("content", {})
        media.setdefault(_JSON, {}).setdefault("example", example)
    if key in REQUEST_EXAMPLES and "requestBody" in operation:
        body = operation["requestBody"]["content"].setdefault(_JSON, {})
        body.setdefault("example", REQUEST_EXAMPLES[key])
