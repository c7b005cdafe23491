"""``product.changed`` keeps the search index in step: through the real relay, a product
created, renamed, repriced and deleted is found (or not) by the API's search, which reads
the index; a redelivered or late event changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import tantivy
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from core.db import create_session_factory, transaction
from core.settings import Settings
from models.catalog import ProductCreate
from models.outbox import OutboxEvent
from services.catalog.indexing import SearchIndexing
from services.catalog.products import ProductService
from services.catalog.search import IndexedSearch, SearchEngines
from services.catalog.search_index import SearchIndexWriter
from services.events.handlers.search import search_index_subscriber
from services.events.handling import load_event
from tests.events.relay_support import eventually, quick, relay
from tests.factories import staff_headers, unique_slug


async def _search_ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/products", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _documents(path: Path, product_id: str) -> int:
    """How many documents the index holds for the product."""
    engine = SearchEngines(path).current()
    assert isinstance(engine, IndexedSearch)
    snapshot = engine.snapshot
    found = snapshot.searcher.search(
        tantivy.Query.term_query(snapshot.schema, "id", product_id), 1, count=True
    )
    return int(getattr(found, "count", 0))


async def test_the_api_finds_what_the_relay_indexed(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "search-index"
    indexing = SearchIndexing(SearchIndexWriter(path))
    sessions = create_session_factory(engine)
    await indexing.rebuild(sessions)
    client = await make_client(search_index=True, search_index_dir=str(path))
    staff = await staff_headers(client, engine)
    word = unique_slug("zq").replace("-", "")
    subscriber = search_index_subscriber(indexing)

    async with relay(quick(settings), temporal_client, [subscriber]):
        created = await client.post(
            "/api/products",
            headers=staff,
            json={"sku": word, "name": f"Alpaca {word} Blanket", "price": 5000, "currency": "USD"},
        )
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]

        async def found(**params: Any) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await _search_ids(client, **params) == [product_id]

            return check

        async def not_found(**params: Any) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await _search_ids(client, **params) == []

            return check

        await eventually(await found(search=f"alpaca {word}"))

        renamed = await client.patch(
            f"/api/products/{product_id}", headers=staff, json={"name": f"Vicuna {word} Throw"}
        )
        assert renamed.status_code == 200
        await eventually(await found(search=f"vicuna {word}"))
        assert await _search_ids(client, search=f"alpaca {word}") == []

        repriced = await client.patch(
            f"/api/products/{product_id}", headers=staff, json={"price": 7000}
        )
        assert repriced.status_code == 200
        await eventually(await found(search=word, minPrice=6500))
        assert await _search_ids(client, search=word, maxPrice=6000) == []

        stocked = await client.post(
            f"/api/inventory/{product_id}/adjust",
            headers=staff,
            json={"delta": 3, "reason": "initial count"},
        )
        assert stocked.status_code == 200, stocked.text
        await eventually(await found(search=word, inStock="true"))

        deleted = await client.delete(f"/api/products/{product_id}", headers=staff)
        assert deleted.status_code == 204
        await eventually(await not_found(search=word))
    assert _documents(path, product_id) == 0

    # Every event again, oldest last (a redelivery after a lost commit, and out of order):
    # the product is gone, and stays gone; no duplicate appears.
    async with sessions() as session:
        event_ids = (
            await session.exec(
                select(OutboxEvent.id)
                .where(OutboxEvent.aggregate_id == product_id)
                .order_by(col(OutboxEvent.seq).desc())
            )
        ).all()
    assert len(event_ids) >= 5  # created, renamed, repriced, in stock, deleted
    for event_id in event_ids:
        async with transaction(sessions) as session:
            await subscriber.handle(await load_event(session, event_id), session)
    assert _documents(path, product_id) == 0
    assert await _search_ids(client, search=word) == []


async def test_redelivering_a_live_product_keeps_one_document(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "search-index"
    indexing = SearchIndexing(SearchIndexWriter(path))
    sessions = create_session_factory(engine)
    await indexing.rebuild(sessions)
    word = unique_slug("zq").replace("-", "")
    async with transaction(sessions) as session:
        product = await ProductService(session).create(
            ProductCreate(sku=word, name=f"Llama {word}", price=100, currency="USD")
        )
    subscriber = search_index_subscriber(indexing)
    async with sessions() as session:
        event_id = (
            await session.exec(select(OutboxEvent.id).where(OutboxEvent.aggregate_id == product.id))
        ).one()
    for _ in range(3):
        async with transaction(sessions) as session:
            await subscriber.handle(await load_event(session, event_id), session)
    assert _documents(path, product.id) == 1


async def test_the_events_worker_builds_a_missing_index(
    settings: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "search-index"
    live = quick(settings).model_copy(update={"search_index": True, "search_index_dir": path})

    async def built() -> bool:
        return isinstance(SearchEngines(path).current(), IndexedSearch)

    async with relay(live, temporal_client, []):
        await eventually(built, within=120)
