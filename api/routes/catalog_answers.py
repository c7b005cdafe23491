"""Catalogue reads answered again from what the process kept (issue #15), and the
analytics events every catalogue read records."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from api.deps import ANONYMOUS_ID
from api.head_requests import is_head
from api.responses import JsonBody
from api.security import Caller
from api.state import AppState
from services.analytics.ingest import PendingEvent
from services.catalog.answers import Answer
from services.catalog.cache import CatalogCache

# The reads whose answers a process keeps and sends again (``AnsweredRoute``).
ANSWERED_READS = frozenset({"list_products", "get_product"})


class AnsweredRoute(APIRoute):
    """A catalogue read whose answer this process holds, still current, is answered with
    its bytes before FastAPI reads the request (``services.catalog.answers``): no query
    parameters validated again, no dependencies, no cache lookups, no serialisation. A
    guest's only: a request with a token (the caller's analytics need it identified) or
    an anonymous id the full read would refuse goes the full way, as any other does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.name not in ANSWERED_READS:
            return handler

        async def answered(request: Request) -> Response:
            scope = request.scope
            anonymous_id = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    return await handler(request)
                if name == b"x-anonymous-id":
                    if anonymous_id is not None:
                        return await handler(request)  # twice: the full read decides
                    anonymous_id = value.decode("latin-1")
                    if not ANONYMOUS_ID.match(anonymous_id):
                        return await handler(request)  # its 422
            state: AppState = request.app.state.shop
            key = (scope["path"], scope["query_string"])
            answer = state.answers.get(
                key, state.catalog_version.known, state.stock, state.search.current_name
            )
            if answer is None:
                first = await self.first_guest_read(request, anonymous_id)
                return first if first is not None else await handler(request)
            if answer.event is not None:
                await record_read(request, state, None, anonymous_id, *answer.event)
            return Response(answer.body, media_type=JsonBody.media_type)

        return answered

    async def first_guest_read(self, request: Request, anonymous_id: str | None) -> Response | None:
        """A guest's read this process holds no answer for, answered without FastAPI's
        machinery, or None (the full way). None here; see ``api.routes.catalog``."""
        return None


def keep_answer(
    state: AppState,
    request: Request,
    version: str | None,
    entry: tuple[str, dict[str, Any]],
    response: Response,
    products: list[dict[str, Any]],
    event: tuple[str, dict[str, Any]] | None = None,
    engine: str | None = None,
) -> None:
    """Keep a guest read's answer to send again (``AnsweredRoute``), while it is current:
    rendered under the version the process holds, from the cache ``entry`` (whose expiry
    it takes), with the stock the view holds, and for a search by ``engine``."""
    if version is None or version != state.catalog_version.known or not state.stock.live:
        return
    cache = CatalogCache(state.redis, local=state.catalog_entries)
    expires = cache.local_expiry(version, *entry)
    if expires is None:
        return
    stock = tuple((p["id"], p["available"]) for p in products)
    answer = Answer(version, expires, bytes(response.body), stock, event, engine)
    state.answers.put((request.scope["path"], request.scope["query_string"]), answer)


async def record_read(
    request: Request,
    state: AppState,
    caller: Caller | None,
    anonymous_id: str | None,
    event: str,
    properties: dict[str, Any],
) -> None:
    """Views and searches go to the batch writer: a read never waits for an INSERT. A
    ``HEAD`` (a link checker, a monitor, a CDN revalidating) viewed nothing: not recorded."""
    if state.settings.analytics_enabled and not is_head(request):
        user_id = caller.user.id if caller else None
        await state.ingest.add(
            [PendingEvent(event, user_id=user_id, anonymous_id=anonymous_id, properties=properties)]
        )
