"""The route a request matched, written as a client writes its path (``/api/products/{key}``,
the OpenAPI document's path): the ``route`` label of the request metrics and the name of the
request's span (``api/middleware.py``).

The route FastAPI hands back in ``scope["route"]`` is the route as its router declared it,
before ``include_router``'s prefix (``/products/{key}``: FastAPI 0.16x includes routers
lazily and keeps their own routes), and some answers have none at all: an ``OPTIONS`` or a
CORS preflight, answered before routing (``api/cors.py``), an idempotent replay, a 405 or
any answer of a plain Starlette route (``/api/openapi.json``). Each is named here by the
full template of the route its path matched. A path that matches none only for a slash
(``/api/products/``), which the router answers with a 307 to the path that matches
(``/api/products``), is named by the template of that route, as FastAPI names its span:
the status (307) tells the redirect from the answer. A path no route matches, with or
without its trailing slash, has none (the ``unmatched`` label: never the path itself,
which would make a series per URL).
"""

from __future__ import annotations

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

UNMATCHED = "unmatched"


class RouteTemplates:
    """Every route of an app with its full path template, read from the app's routes at
    the first request and again whenever they change (a route added, a router included)."""

    def __init__(self) -> None:
        self._routes: list[BaseRoute] = []
        self._count = -1
        self._contexts: list[RouteContext] = []
        # A route as FastAPI hands it back -> its inclusions (one, unless its router was
        # included twice, under two prefixes).
        self._by_route: dict[int, list[RouteContext]] = {}

    def template(self, scope: Scope) -> str | None:
        """The template of the route ``scope``'s path matched (whatever its method), or
        None when none does."""
        routes: list[BaseRoute] = scope["app"].router.routes
        route = scope.get("route")
        if routes is not self._routes or len(routes) != self._count:
            self._read(routes)
        inclusions = self._by_route.get(id(route)) if route is not None else None
        if inclusions is not None and len(inclusions) == 1:
            return inclusions[0].path_format
        # Only the path is matched: the method may be one the route does not take (405,
        # OPTIONS), and the scope is the request's own (its path and root path).
        by_path = {
            "type": "http",
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "method": scope["method"],
        }
        for context in inclusions or self._contexts:
            if context.matches(by_path)[0] is not Match.NONE:
                return context.path_format
        if inclusions is None and scope["app"].router.redirect_slashes:
            return self._redirected_to(by_path)
        return None

    def _redirected_to(self, by_path: Scope) -> str | None:
        """The template of the route the router redirects ``by_path`` to, matched as it
        matches it (Starlette's ``Router.app``): the path without its trailing slashes, or
        with one, when the path alone matches no route."""
        path: str = by_path["path"]
        if path == by_path["root_path"] + "/":
            return None  # the root is never redirected
        other = {**by_path, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
        for context in self._contexts:
            if context.matches(other)[0] is not Match.NONE:
                return context.path_format
        return None

    def _read(self, routes: list[BaseRoute]) -> None:
        contexts = [c for c in iter_route_contexts(routes) if c.path_format]
        by_route: dict[int, list[RouteContext]] = {}
        for context in contexts:
            by_route.setdefault(id(context.original_route), []).append(context)
        self._routes, self._count = routes, len(routes)
        self._contexts, self._by_route = contexts, by_route
