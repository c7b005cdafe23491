"""A field the request body's model does not have: the name a client probably meant.

Request bodies refuse unknown fields (``models.base.RequestModel``); the 422 answer
(``api/errors.py``) names the field as sent and, when one of the fields known at that
place in the body is close to it, that one (``isActive``: did you mean ``active``?), as
Stripe's ``parameter_unknown`` does.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, Tag

from models.base import UNION_TAG_MARK

UNKNOWN_FIELD = "unknown_field"


def _members(annotation: Any) -> list[Any]:
    """What a value of ``annotation`` can be: the members of its unions (Optional too)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(annotation) for member in _members(arg)]
    return [annotation]


def _bare(annotation: Any) -> Any:
    return (
        typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation
    )


def kinds_of(annotation: Any) -> list[Any]:
    """What a value of ``annotation`` can be, bare: its union's members (Optional too),
    without ``Annotated`` metadata (a query parameter's, as a body field's)."""
    return [_bare(member) for member in _members(_bare(annotation))]


def _tagged(annotation: Any, tag: str) -> bool:
    """Is ``annotation`` the member of a tagged union whose tag is ``tag``?"""
    metadata = getattr(annotation, "__metadata__", ())
    return any(isinstance(item, Tag) and item.tag == tag for item in metadata)


def _step(candidates: list[Any], part: int | str) -> list[Any]:
    """The annotations below ``candidates`` at one part of an error's location."""
    found: list[Any] = []
    for candidate in candidates:
        for member in _members(_bare(candidate)):
            if isinstance(part, str) and part.startswith(UNION_TAG_MARK):
                if _tagged(member, part):
                    found.append(member)
                continue
            bare = _bare(member)
            if isinstance(part, int):
                if typing.get_origin(bare) is list:
                    found.append(typing.get_args(bare)[0])
            elif isinstance(bare, type) and issubclass(bare, BaseModel):
                found.extend(
                    field.annotation
                    for name, field in bare.model_fields.items()
                    if part in (name, field.alias)
                )
    return found


def known_fields(annotation: Any, path: tuple[int | str, ...]) -> set[str]:
    """The wire names of the fields known at ``path`` (below the body) in ``annotation``."""
    candidates = [annotation]
    for part in path:
        candidates = _step(candidates, part)
    return {
        field.alias or name
        for candidate in candidates
        for member in _members(_bare(candidate))
        if isinstance(_bare(member), type) and issubclass(_bare(member), BaseModel)
        for name, field in _bare(member).model_fields.items()
    }


def suggestion(request: Request, loc: tuple[int | str, ...]) -> str:
    """``"; did you mean active?"`` for an unknown body field at ``loc``, else ``""``."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None or len(loc) < 2:
        return ""
    if loc[0] != "body" or not isinstance(loc[-1], str):
        return ""
    known = known_fields(route.body_field.field_info.annotation, loc[1:-1])
    return did_you_mean(loc[-1], known)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean active?"`` when one of the ``known`` names is close to ``name``
    (a body's field or a query's parameter), else ``""``."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not close:
        lowered = {known_name.lower(): known_name for known_name in names}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    return f"; did you mean {close[0]}?" if close else ""


def refuses_unknown_fields(dependant: Dependant) -> bool:
    """Does the operation's body refuse fields it does not know (a RequestModel)?"""
    bodies = [param.field_info.annotation for param in dependant.body_params]
    return any(
        isinstance(model, type)
        and issubclass(model, BaseModel)
        and model.model_config.get("extra") == "forbid"
        for body in bodies
        for model in map(_bare, _members(_bare(body)))
    ) or any(refuses_unknown_fields(dependency) for dependency in dependant.dependencies)
