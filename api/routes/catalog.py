"""The catalogue: categories, products (listing, search, detail) and staff writes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import (
    AnonymousIdHeader,
    DbSession,
    State,
    after_commit,
)
from api.problems import problem_responses
from api.responses import JsonBody
from api.routes.catalog_answers import AnsweredRoute, keep_answer, record_read
from api.routes.catalog_detail import ProductDetailRoute, read_product
from api.routes.catalog_query import guest_listing_query
from api.security import Caller, OptionalUser, StaffUser
from api.state import AppState
from core.errors import Conflict, ValidationFailed
from models.catalog import (
    MAX_AMOUNT,
    CategoryCreate,
    CategoryNode,
    ProductCreate,
    ProductPage,
    ProductPublic,
    ProductUpdate,
)
from services.catalog.cache import CatalogCache
from services.catalog.categories import CategoryService
from services.catalog.errors import CategoryNotFound, ProductNotFound
from services.catalog.pricing import price_book
from services.catalog.product_query import (
    SEARCH_MAX_LENGTH,
    ProductQuery,
    ProductSort,
    normalize_search,
)
from services.catalog.products import POSTGRES_SEARCH, ProductSearch, ProductService
from services.catalog.rendering import to_public, to_wire
from services.inventory import StockRepository

SLUG_TAKEN = (Conflict, "slug_taken")
PRODUCT_CONFLICTS = ((Conflict, "sku_taken"), SLUG_TAKEN)


class CatalogRoute(AnsweredRoute):
    """``AnsweredRoute``, and a guest's listing or search that was not answered before is
    validated and answered here, before FastAPI's parameter and dependency machinery (0.8
    ms of a first search's 2-3.5 ms of API CPU): ``guest_listing_query`` takes only a
    query that FastAPI would accept as it stands, and the answer comes from
    ``answer_listing``, as the route's. Anything else (an error) goes the full way."""

    async def first_guest_read(self, request: Request, anonymous_id: str | None) -> Response | None:
        if self.name != "list_products":
            return None
        query = guest_listing_query(request.scope["query_string"])
        if query is None:
            return None
        return await answer_listing(request, request.app.state.shop, None, anonymous_id, query)


router = APIRouter(tags=["catalog"], route_class=CatalogRoute)


def invalidate_catalog(session: DbSession, state: AppState) -> None:
    """After this request commits, every cached listing and detail is out of date: the
    next request of this process reads the new version, the others once told."""
    after_commit(session, lambda: state.catalog_version.bump(session))


async def _with_live_stock(
    state: AppState, session: AsyncSession, products: list[dict[str, Any]], *, fresh: bool
) -> list[dict[str, Any]]:
    """Availability is never cached with a page: it comes from the process's stock view
    (kept by the stock rows' notifications), or from the database (one indexed query)
    for products the view does not hold, and for every product when ``fresh`` (a list
    filtered by stock shows what the filter read). Copies carry the stock; the page's
    own dicts stay as they were cached (each read of the cache decodes its own)."""
    if not products:
        return products
    ids = [p["id"] for p in products]
    if fresh:
        available = await StockRepository(session).available(ids)
    else:
        available = await state.stock.available(session, ids)
    return [{**product, "available": available[product["id"]]} for product in products]


@router.get("/categories", summary="The category tree", response_model=list[CategoryNode])
async def category_tree(session: DbSession) -> list[CategoryNode]:
    """Every category, nested under its parent, alphabetical at each level."""
    return await CategoryService(session).tree()


@router.post(
    "/categories",
    status_code=status.HTTP_201_CREATED,
    summary="Create a category (staff)",
    response_model=CategoryNode,
    responses=problem_responses(SLUG_TAKEN, (ValidationFailed, "parent_not_found")),
)
async def create_category(
    body: CategoryCreate, caller: StaffUser, session: DbSession, state: State
) -> CategoryNode:
    """`slug` is unique (409 `slug_taken`); `parentId` (an id or slug) must exist."""
    category = await CategoryService(session).create(body)
    invalidate_catalog(session, state)
    return CategoryNode(
        id=category.id, name=category.name, slug=category.slug, parent_id=category.parent_id
    )


@router.get(
    "/products",
    summary="List and search products",
    response_model=ProductPage,
    responses=problem_responses((ValidationFailed, "invalid_price_range")),
)
async def list_products(
    request: Request,
    state: State,
    caller: OptionalUser,
    anonymous_id: AnonymousIdHeader = None,
    category: Annotated[str | None, Query(max_length=120, description="Id or slug")] = None,
    min_price: Annotated[int | None, Query(alias="minPrice", ge=0, le=MAX_AMOUNT)] = None,
    max_price: Annotated[int | None, Query(alias="maxPrice", ge=0, le=MAX_AMOUNT)] = None,
    search: Annotated[str | None, Query(max_length=SEARCH_MAX_LENGTH)] = None,
    in_stock: Annotated[bool | None, Query(alias="inStock")] = None,
    sort: ProductSort | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Active products, newest first (or by relevance when searching).

    `category` includes its subcategories; an unknown one gives an empty page.
    `minPrice`/`maxPrice` are inclusive, in minor units. `inStock=true` keeps products
    with stock available (`false`: only those without). `search` matches every word, by
    its English stem in the name or description (ranked, the name weighing more), or a
    name word close to it or starting with it, so partial words and small typos match
    ("headphon", "wireles"); a change shows in search once the event relay has carried
    it to the search index (PostgreSQL full-text search answers while it is not ready).
    `sort` is `newest`, `price_asc`, `price_desc`, `rating` or `relevance`.

    A search counts at most 1,000 matches and ranks those (the best 1,000 from the search
    index, or the first the database's indexes find while it is not ready): past that,
    `total` is 1,000 and `totalExact` is false.
    """
    if min_price is not None and max_price is not None and min_price > max_price:
        raise ValidationFailed(
            "minPrice must not be greater than maxPrice",
            code="invalid_price_range",
            field="minPrice",
        )
    query = ProductQuery(
        category=category,
        min_price=min_price,
        max_price=max_price,
        search=normalize_search(search),
        in_stock=in_stock,
        sort=sort,
        page=page,
        limit=limit,
    )
    return await answer_listing(request, state, caller, anonymous_id, query)


async def answer_listing(
    request: Request,
    state: AppState,
    caller: Caller | None,
    anonymous_id: str | None,
    query: ProductQuery,
) -> Response:
    """The answer to a validated ``GET /products``: by the route, or for a guest by
    ``CatalogRoute`` before FastAPI reads the request."""
    # The sessions are opened here, not taken as dependencies: FastAPI's per-request
    # dependency machinery (an exit stack, a shielded context manager per generator) cost
    # more than the session itself on a cached page. Reads run in autocommit (a round trip
    # each, no BEGIN and COMMIT), except PostgreSQL's full-text search, which sets planner
    # options for a transaction of its own.
    engine = state.search.current() if query.search else None
    # Stock moves with every checkout: a list filtered by it is not cached.
    version = await state.catalog_version.current() if query.in_stock is None else None
    if engine is POSTGRES_SEARCH:
        async with state.sessions() as session, session.begin():
            body = await _listing(state, query, session, engine, version)
    else:
        async with state.read_sessions() as reads:
            body = await _listing(state, query, reads, engine, version)
    response = JsonBody(body)
    event = None
    if query.search:
        event = ("product_search", {"search": query.search, "resultsCount": body["total"]})
        await record_read(request, state, caller, anonymous_id, *event)
    if caller is None:
        # A guest's search is kept too: a shop's popular searches repeat (the bench's
        # generator repeats 43% of a process's searches within 1,500).
        entry = ("page", _page_key(query, engine))
        name = engine.name if engine is not None else None
        keep_answer(state, request, version, entry, response, body["items"], event, name)
    return response


def _page_key(query: ProductQuery, engine: ProductSearch | None) -> dict[str, Any]:
    """A page's cache key. The index catches up with a write a moment after it commits: a
    page it answered is cached under the index's generation, so a newer one is not
    answered from it."""
    key = query.cache_params()
    if engine is not None:
        key["engine"] = engine.name
    return key


async def _listing(
    state: AppState,
    query: ProductQuery,
    db: AsyncSession,
    engine: ProductSearch | None,
    version: str | None,
) -> dict[str, Any]:
    """The page of ``query``, from the cache or ``db``, with the stock read now."""
    cache = CatalogCache(state.redis, local=state.catalog_entries)
    page_key = _page_key(query, engine)
    body: dict[str, Any] | None = cache.get_local(version, "page", page_key)
    # What a page that is not in this process's copy needs, read from Redis in one round
    # trip: the page, the listing's total (the same for all its pages and orders: counted
    # once per catalogue version, a count of 100,000 rows is most of a listing's cost) and
    # the category's subtree (categories change only by catalogue writes, which bump the
    # version).
    count_key = None if query.search else ("count", query.count_params())
    subtree_key = None if query.category is None else ("subtree", {"category": query.category})
    counted = subtree = None
    if body is None:
        wanted = [("page", page_key), *(k for k in (count_key, subtree_key) if k is not None)]
        body, *found_entries = await cache.get_many(version, wanted)
        entries = dict(zip([kind for kind, _ in wanted[1:]], found_entries, strict=True))
        counted, subtree = entries.get("count"), entries.get("subtree")
    if body is None:
        products = ProductService(db)
        writes: list[tuple[str, dict[str, Any], Any, int | None]] = []
        if subtree_key is not None and subtree is None:
            subtree = await products.category_subtree(subtree_key[1]["category"])
            writes.append((*subtree_key, subtree, None))
        begun = state.stock.reading()
        found = await products.search(
            query, known_total=counted, engine=engine or POSTGRES_SEARCH, subtree=subtree
        )
        state.stock.read_rows(begun, found.rows)
        if count_key is not None and counted is None:
            writes.append((*count_key, found.total, None))
        prices = await state.prices.get(db, version)
        body = {
            "items": [to_wire(p, prices) for p in found.rows],
            "total": found.total,
            "totalExact": found.total_exact,
            "page": query.page,
            "limit": query.limit,
        }
        # The page, and the total and subtree it read, written in one round trip.
        writes.append(("page", page_key, body, prices.cache_seconds()))
        await cache.put_many(version, writes)
    items = await _with_live_stock(state, db, body["items"], fresh=query.in_stock is not None)
    return {**body, "items": items}


async def get_product(
    key: str,
    request: Request,
    state: State,
    caller: OptionalUser,
    anonymous_id: AnonymousIdHeader = None,
) -> Response:
    """By id (`prod_…`) or slug: the effective price and the rating summary."""
    return await read_product(state, key, caller, anonymous_id, request)


# Added, not decorated: a guest's read is taken by its route class before FastAPI's
# request handling (``ProductDetailRoute``).
router.add_api_route(
    "/products/{key}",
    get_product,
    methods=["GET"],
    summary="Get a product",
    response_model=ProductPublic,
    responses=problem_responses(ProductNotFound),
    route_class_override=ProductDetailRoute,
)


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    summary="Create a product (staff)",
    response_model=ProductPublic,
    responses=problem_responses(*PRODUCT_CONFLICTS, CategoryNotFound),
)
async def create_product(
    body: ProductCreate, caller: StaffUser, session: DbSession, state: State
) -> ProductPublic:
    """`sku` and `slug` are unique (409 `sku_taken`, `slug_taken`); the slug is made from
    the name when not given. Prices are non-negative integers of minor units."""
    product = await ProductService(session).create(body)
    invalidate_catalog(session, state)
    return to_public(product, await price_book(session))


async def _update(key: str, body: ProductUpdate, session: DbSession, state: State) -> ProductPublic:
    product = await ProductService(session).update(key, body)
    invalidate_catalog(session, state)
    return to_public(product, await price_book(session))


@router.patch(
    "/products/{key}",
    summary="Change some fields of a product (staff)",
    response_model=ProductPublic,
    responses=problem_responses(ProductNotFound, *PRODUCT_CONFLICTS, CategoryNotFound),
)
async def patch_product(
    key: str, body: ProductUpdate, caller: StaffUser, session: DbSession, state: State
) -> ProductPublic:
    """Only the fields given change; the new price is served as soon as this returns (by
    every API process once told, about a millisecond later)."""
    return await _update(key, body, session, state)


@router.put(
    "/products/{key}",
    summary="Replace a product (staff)",
    response_model=ProductPublic,
    responses=problem_responses(ProductNotFound, *PRODUCT_CONFLICTS, CategoryNotFound),
)
async def put_product(
    key: str, body: ProductCreate, caller: StaffUser, session: DbSession, state: State
) -> ProductPublic:
    """Every field is set from the body."""
    fields = body.model_dump()
    if fields.get("slug") is None:
        fields.pop("slug", None)  # no slug given: keep the current one
    update = ProductUpdate.model_validate(fields)
    return await _update(key, update, session, state)


@router.delete(
    "/products/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a product from the catalogue (staff)",
    response_class=Response,
    responses=problem_responses(ProductNotFound),
)
async def delete_product(key: str, caller: StaffUser, session: DbSession, state: State) -> Response:
    """A soft delete: it leaves listings and detail (404), while orders and reviews that
    refer to it keep working."""
    await ProductService(session).delete(key)
    invalidate_catalog(session, state)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
