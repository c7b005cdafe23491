"""A query string is read as strictly as a body: every parameter known, given once,
an integer written as one and a boolean as ``true`` or ``false``.

FastAPI reads the parameters a route declares and ignores the rest: a misspelt one
(``?categry=headphones``) passed for no filter at all, a scalar given twice
(``?page=1&page=3``) silently took the last, and pydantic's lax mode read ``1_0`` as 10,
``+5``, `` 5`` or ``5.0`` as 5, and ``1``, ``yes``, ``on``, ``t``, ``y`` or ``True`` as
true (``0``, ``no``, ``off``... as false). ``refuse_unexpected_query``, a dependency of
every ``/api`` router (``api/app.py``), refuses them from the route's own declared
parameters (422 ``unknown_parameter``, with the parameter probably meant, as
``unknown_field`` does for a body; 422 ``repeated_parameter``; 422 ``validation_error``
``int_parsing`` or ``bool_parsing``), with whatever else FastAPI finds wrong in the
query. A route that takes whatever its caller sends (a provider's webhook, called at a
URL the operator typed in the provider's console) is marked ``takes_any_query``.
"""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from api.unknown_fields import did_you_mean, kinds_of

UNKNOWN_PARAMETER = "unknown_parameter"
REPEATED_PARAMETER = "repeated_parameter"
# An integer as JSON writes one (a body's numbers are JSON's): digits, an optional minus
# sign, no leading zero (``010`` is 8 to some readers), no underscore, plus sign, space
# or fraction, all of which pydantic's lax mode reads from a string.
PLAIN_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
INTEGER_MESSAGE = (
    "Input should be a valid integer, written as digits with an optional minus sign "
    "(no underscores, spaces, plus sign, leading zeros or fraction)"
)
# A boolean as JSON writes one: ``true`` or ``false``, nothing else (a body's booleans
# are JSON's too); one spelling, so a cache, a log search and a client agree.
PLAIN_BOOLEANS = frozenset({"true", "false"})
BOOLEAN_MESSAGE = "Input should be a valid boolean, written as true or false"
_ANY_QUERY = "__takes_any_query__"
_SEQUENCES = frozenset({list, tuple, set, frozenset, Sequence})
F = TypeVar("F", bound=Callable[..., Any])


def takes_any_query(endpoint: F) -> F:
    """Mark an endpoint whose caller chooses its query string (a provider's webhook):
    its parameters are not checked."""
    setattr(endpoint, _ANY_QUERY, True)
    return endpoint


def _kinds(annotation: Any) -> list[Any]:
    """What a parameter's value can be, a generic one as its origin (``list``)."""
    return [typing.get_origin(kind) or kind for kind in kinds_of(annotation)]


@dataclass(frozen=True)
class QueryRules:
    """What a route's query string may hold, from the parameters it declares (its
    dependencies' too): their names, those that take one value, those that are
    integers, those that are booleans."""

    known: frozenset[str]
    single: frozenset[str]
    integers: frozenset[str]
    booleans: frozenset[str]
    fields: tuple[ModelField, ...]

    @classmethod
    def of(cls, dependant: Dependant) -> QueryRules | None:
        """The rules of an operation, or None when its endpoint ``takes_any_query``."""
        if getattr(dependant.call, _ANY_QUERY, False):
            return None
        fields = _query_fields(dependant)
        kinds = {field.alias: _kinds(field.field_info.annotation) for field in fields}
        return cls(
            known=frozenset(kinds),
            single=frozenset(name for name, kind in kinds.items() if _SEQUENCES.isdisjoint(kind)),
            integers=frozenset(name for name, kind in kinds.items() if int in kind),
            booleans=frozenset(name for name, kind in kinds.items() if bool in kind),
            fields=tuple(fields),
        )

    def errors(self, request: Request) -> list[dict[str, Any]]:
        """The query's unknown, repeated and unplainly written integer or boolean
        parameters, each named once, in the order sent, and (when there is one) FastAPI's
        errors of the other parameters."""
        pairs = request.query_params.multi_items()
        counts = Counter(name for name, _ in pairs)
        found: dict[str, dict[str, Any]] = {}
        for name, value in pairs:
            if name in found:
                continue
            if name not in self.known:
                message = "not a parameter of this request" + did_you_mean(name, self.known)
                found[name] = _error(UNKNOWN_PARAMETER, name, message, value)
            elif name in self.single and counts[name] > 1:
                message = f"given {counts[name]} times; it takes one value"
                found[name] = _error(REPEATED_PARAMETER, name, message, value)
            elif name in self.integers and PLAIN_INTEGER.fullmatch(value) is None:
                found[name] = _error("int_parsing", name, INTEGER_MESSAGE, value)
            elif name in self.booleans and value not in PLAIN_BOOLEANS:
                found[name] = _error("bool_parsing", name, BOOLEAN_MESSAGE, value)
        if not found:
            return []
        # What FastAPI would say of the parameters left: the client fixes all at once.
        rest = [field for field in self.fields if field.alias not in found]
        return [*found.values(), *request_params_to_args(rest, request.query_params)[1]]


def _query_fields(dependant: Dependant) -> list[ModelField]:
    """The query parameters FastAPI reads for ``dependant``: its own and its dependencies'
    (no route takes a query model, whose fields would be named below it)."""
    fields = list(dependant.query_params)
    for dependency in dependant.dependencies:
        fields.extend(
            f for f in _query_fields(dependency) if f.alias not in {g.alias for g in fields}
        )
    return fields


def _error(kind: str, name: str, message: str, value: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("query", name), "msg": message, "input": value}


def checks_query(calls: Sequence[Callable[..., Any]]) -> bool:
    """Is an operation whose dependencies are ``calls`` under ``refuse_unexpected_query``?"""
    return refuse_unexpected_query in calls


# Kept on the route: what its query may hold (None: anything), from its first request
# with a query.
_RULES = "_shop_query_rules"


async def refuse_unexpected_query(request: Request) -> None:
    """Refuse a query parameter the route does not declare, a scalar one given twice and
    an integer or a boolean not written plainly: 422, before the route's other dependencies run."""
    if not request.scope["query_string"]:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if not hasattr(route, _RULES):
        setattr(route, _RULES, QueryRules.of(route.dependant))
    rules: QueryRules | None = getattr(route, _RULES)
    if rules is not None and (errors := rules.errors(request)):
        raise RequestValidationError(errors)
