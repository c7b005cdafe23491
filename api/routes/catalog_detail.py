"""Product detail: one statement for a product the process has not rendered, and a
guest's read taken before FastAPI's request handling (issue #15)."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from api.responses import JsonBody
from api.routes.catalog_answers import AnsweredRoute, keep_answer, record_read
from api.security import Caller
from api.state import AppState
from services.catalog.cache import CatalogCache
from services.catalog.detail import ProductDetailRepository
from services.catalog.errors import ProductNotFound
from services.catalog.rendering import to_wire


async def read_product(
    state: AppState, key: str, caller: Caller | None, anonymous_id: str | None, request: Request
) -> Response:
    """The product by id or slug, with its effective price and available stock; a guest's
    answer is kept to be sent again (``AnsweredRoute``)."""
    cache = CatalogCache(state.redis, local=state.catalog_entries)
    version = await state.catalog_version.current()
    product: dict[str, Any] | None = cache.get_local(version, "product", {"key": key})
    if product is None:
        # Only in this process's copy, not in Redis: reading the row with its stock costs
        # the API less than a Redis read and write of the rendered product.
        begun = state.stock.reading()
        async with state.engine.connect() as connection:
            row = await ProductDetailRepository(connection).listed(key)
        if row is None:
            raise ProductNotFound(f"no product {key}")
        prices = state.prices.held(version)
        if prices is None:
            async with state.read_sessions() as reads:
                prices = await state.prices.get(reads, version)
        product = to_wire(row, prices)
        ttl = prices.cache_seconds()
        cache.put_local(version, "product", {"key": key}, product, ttl_seconds=ttl)
        available = state.stock.read(begun, row.id, row.available, row.stock_revision)
    else:
        # A session of its own, not a dependency (see ``catalog.list_products``).
        async with state.read_sessions() as reads:
            [available] = (await state.stock.available(reads, [product["id"]])).values()
    product = {**product, "available": available}
    view = {
        "productId": product["id"],
        "categoryId": product["categoryId"],
        "price": product["effectivePrice"],
    }
    await record_read(request, state, caller, anonymous_id, "product_view", view)
    response = JsonBody(product)
    if caller is None:
        entry = ("product", {"key": key})
        keep_answer(state, request, version, entry, response, [product], ("product_view", view))
    return response


class ProductDetailRoute(AnsweredRoute):
    """A guest's product this process holds no answer to is read here, before FastAPI's
    request handling, as a kept answer is sent: the route's one parameter is the path's
    ``key`` (any string; a query string goes the full way, which refuses it), and a
    guest's dependencies are none (no token: no caller; the anonymous id
    ``AnsweredRoute`` checked)."""

    async def first_guest_read(self, request: Request, anonymous_id: str | None) -> Response | None:
        if request.scope["query_string"]:
            return None  # the route takes no parameter: the full read refuses them
        key: str = request.path_params["key"]
        return await read_product(request.app.state.shop, key, None, anonymous_id, request)
