"""Every HTTP operation of an app, as FastAPI routes it (routers are included lazily
since FastAPI 0.16x: walked as ``api/openapi.py`` walks them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from api.openapi import _calls


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Callable[..., Any]
    dependencies: tuple[Callable[..., Any], ...]
    dependant: Dependant

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: FastAPI) -> list[Operation]:
    found: list[Operation] = []
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if not isinstance(original, APIRoute) or not route.path_format:
            continue
        for method in sorted(route.methods or ()):
            found.append(
                Operation(
                    method=method,
                    path=route.path_format,
                    endpoint=original.endpoint,
                    dependencies=tuple(_calls(route.dependant)),
                    dependant=route.dependant,
                )
            )
    return found
