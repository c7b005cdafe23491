"""The methods a path answers: a 405's ``Allow``, ``OPTIONS``' ``Allow`` and a CORS
preflight's ``Access-Control-Allow-Methods`` all say the same (RFC 9110 §10.2.1)."""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import Scope

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def path_methods(scope: Scope) -> list[str]:
    """Every method the request's path answers, in a fixed order (``HEAD`` beside
    ``GET``, ``api/head_requests.py``; ``OPTIONS`` last, ``api/cors.py``); none for a
    path nothing answers.

    The router names only the first route it matched, and each method of a path is a
    route of its own (``GET`` and ``POST /api/products``): asked here of every route,
    only when a 405 or an ``OPTIONS`` is answered."""
    routes = scope["app"].router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    if "GET" in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    if allowed:
        allowed.append("OPTIONS")
    return allowed
