"""``HEAD`` answers as ``GET`` would, without the body (RFC 9110 §9.3.2).

FastAPI registers a ``GET`` route for ``GET`` only, so ``HEAD /api/products`` answered
405: a client checking a resource (its status, ``ETag``, ``Content-Length``) without
fetching it could not. Here a ``HEAD`` request runs as ``GET`` (the same route, checks,
``If-None-Match`` and all) and only the status and headers go out. A path without
``GET`` answers ``HEAD`` with the 405 ``GET`` gets there.

Pure ASGI: the request keeps its own method outside (logs, metrics, the server, which
sends no body for ``HEAD`` either); the route it ran is handed back for the metrics'
label. A streamed answer (an event stream) ends once its headers are out: the endpoint
is told the client has gone.

The request's state marks it a ``HEAD`` (``is_head``): a catalogue read records no
analytics event for it (``catalog_answers.record_read``), as nobody viewed a product or
searched when a link checker, an uptime monitor or a CDN revalidating sent it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set in the request's state (Starlette's ``request.state``) of a ``HEAD`` run as ``GET``.
HEAD_REQUEST = "head_request"


def is_head(request: Request) -> bool:
    """Whether ``request`` (a ``GET`` to the routes) was sent as ``HEAD``."""
    return bool(request.scope.get("state", {}).get(HEAD_REQUEST, False))


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # The app's request state is this dict, shared with the middleware outside.
        scope.setdefault("state", {})[HEAD_REQUEST] = True
        as_get = {**scope, "method": "GET"}
        finished = False

        async def headers_only(message: Message) -> None:
            nonlocal finished
            if finished:
                return
            if message["type"] == "http.response.body":
                finished = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        async def gone_once_answered() -> Message:
            # A streaming endpoint learns at once that nobody reads on.
            if finished:
                return {"type": "http.disconnect"}
            return await receive()

        try:
            await self.app(as_get, gone_once_answered, headers_only)
        finally:
            if "route" in as_get:
                scope["route"] = as_get["route"]
