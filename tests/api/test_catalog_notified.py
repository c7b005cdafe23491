"""Catalogue reads answered from what the process was told (issue #15): the stock view kept
by the stock rows' notifications, the catalogue version pushed by a write's, and the
answers kept and sent again while both say they are current.

Stock is changed the ways a shop changes it, in sessions of their own that commit (a
checkout's reservation, a restock), never through the API under test: what reaches the
API is PostgreSQL's notification of that commit, and the tests wait for it by watching
the process's view, never by sleeping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from api.state import AppState
from core.db import create_session_factory, transaction
from models.analytics import AnalyticsEvent
from models.inventory import ReservationLine
from services.inventory.reservations import ReservationService
from services.inventory.stock import StockService
from tests.api.test_order_long_poll import until
from tests.factories import signed_up, stocked_product, unique_slug


@pytest.fixture
async def product(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    """A product with 5 in stock, in a category of its own (a listing of one)."""
    category = await client.post(
        "/api/categories",
        headers=staff,
        json={"name": "Lamps", "slug": unique_slug("lamps")},
    )
    assert category.status_code == 201, category.text
    return await stocked_product(
        client, staff, price=2500, stock=5, categoryId=category.json()["id"]
    )


async def _live(app: FastAPI) -> AppState:
    state: AppState = app.state.shop
    await until(lambda: state.stock.live, "the stock view listens")
    return state


async def _served(client: httpx.AsyncClient, product: dict[str, Any]) -> tuple[int, int]:
    """What the next listing and the next detail show as the product's availability."""
    listing = await client.get("/api/products", params={"category": product["categoryId"]})
    detail = await client.get(f"/api/products/{product['id']}")
    assert listing.status_code == 200, listing.text
    assert detail.status_code == 200, detail.text
    [item] = listing.json()["items"]
    return item["available"], detail.json()["available"]


async def test_a_stock_change_in_another_session_shows_once_its_notification_arrives(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, product: dict[str, Any]
) -> None:
    state = await _live(app)
    assert await _served(client, product) == (5, 5)  # read once, then held
    reads = state.stock.reads
    assert await _served(client, product) == (5, 5)
    assert state.stock.reads == reads  # answered from the view: no stock read

    sessions = create_session_factory(engine)
    # A checkout's reservation of 2, committed in a session of its own.
    heard = state.stock.heard
    async with transaction(sessions) as session:
        await ReservationService(session).reserve(
            f"ord_{unique_slug('view')}",
            [ReservationLine(product_id=product["id"], quantity=2)],
            timedelta(minutes=5),
        )
    await until(lambda: state.stock.heard > heard, "the reservation's notification")
    assert await _served(client, product) == (3, 3)

    # A restock of 10.
    heard = state.stock.heard
    async with transaction(sessions) as session:
        await StockService(session).adjust(product["id"], 10, "delivery")
    await until(lambda: state.stock.heard > heard, "the restock's notification")
    assert await _served(client, product) == (13, 13)
    assert state.stock.reads == reads  # every answer came from the view


async def test_a_lost_listener_drops_the_stock_view(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, product: dict[str, Any]
) -> None:
    state = await _live(app)
    assert await _served(client, product) == (5, 5)
    # A change whose notification is lost (triggers off for its transaction, as one sent
    # while the listener reconnects is): the view still holds 5.
    async with transaction(create_session_factory(engine)) as session:
        conn = await session.connection()
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await StockService(session).adjust(product["id"], -4, "damaged")
    assert await _served(client, product) == (5, 5)

    connections, pid = state.order_changes.connections, state.order_changes.backend_pid
    assert pid is not None
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(text(f"SELECT pg_terminate_backend({pid})"))  # type: ignore[call-overload]
    # Dropped when the loss is seen (the reads in between go to the database), and
    # started empty when listening again.
    await until(lambda: state.order_changes.connections > connections, "the reconnection")
    assert await _served(client, product) == (1, 1)
    reads = state.stock.reads
    assert await _served(client, product) == (1, 1)
    assert state.stock.reads == reads  # held again


async def test_a_staff_price_change_is_served_at_once_by_the_process_that_made_it(
    app: FastAPI, client: httpx.AsyncClient, staff: dict[str, str], product: dict[str, Any]
) -> None:
    """The writing process forgets its version before the write answers, so its next
    read reads the new one, whether or not the notification has arrived."""
    state = await _live(app)
    detail = f"/api/products/{product['id']}"
    assert (await client.get(detail)).json()["price"] == 2500
    await until(lambda: state.catalog_version.known is not None, "the version is held")
    held = state.catalog_version.known
    changed = await client.patch(detail, headers=staff, json={"price": 2700})
    assert changed.status_code == 200, changed.text
    assert state.catalog_version.known != held
    assert (await client.get(detail)).json()["price"] == 2700
    listing = await client.get("/api/products", params={"category": product["categoryId"]})
    assert listing.json()["items"][0]["price"] == 2700


async def test_a_guest_read_answered_again_is_the_same_and_still_recorded(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, product: dict[str, Any]
) -> None:
    """A guest's listing and detail are answered again with the bytes the process kept
    (``AnsweredRoute``), and a product view answered so is recorded as any other; a
    request with a token or a bad anonymous id goes the full way."""
    state = await _live(app)
    await until(lambda: state.catalog_version.known is not None, "the version is held")
    detail = f"/api/products/{product['id']}"
    listing = {"category": product["categoryId"], "limit": 5}
    first = [await client.get(detail), await client.get("/api/products", params=listing)]
    hits = state.answers.hits
    visitor = f"anon_{unique_slug('answered')}"
    again = [
        await client.get(detail, headers={"X-Anonymous-Id": visitor}),
        await client.get("/api/products", params=listing),
    ]
    assert state.answers.hits == hits + 2
    for kept, sent in zip(first, again, strict=True):
        assert sent.status_code == kept.status_code == 200
        assert sent.content == kept.content
        assert sent.headers["content-type"] == kept.headers["content-type"]
        assert sent.headers["x-request-id"] != kept.headers["x-request-id"]

    bad = await client.get(detail, headers={"X-Anonymous-Id": "not an id!"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "validation_error"
    user, headers = await signed_up(client)
    assert (await client.get(detail, headers=headers)).status_code == 200
    assert state.answers.hits == hits + 2  # neither was answered from the kept bytes

    await state.ingest.flush()
    async with create_session_factory(engine)() as session:
        rows = (
            await session.exec(
                select(AnalyticsEvent.anonymous_id, AnalyticsEvent.user_id).where(
                    AnalyticsEvent.event == "product_view",
                    AnalyticsEvent.properties["productId"].astext == product["id"],
                )
            )
        ).all()
    assert (visitor, None) in rows
    assert (None, user["id"]) in rows


async def test_a_guest_search_answered_again_is_the_same_and_still_recorded(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, product: dict[str, Any]
) -> None:
    """A guest's search is answered again with the bytes the process kept, and recorded
    as a search (``product_search``) as the full read records it."""
    state = await _live(app)
    await until(lambda: state.catalog_version.known is not None, "the version is held")
    search = {"search": "thing", "category": product["categoryId"]}
    first = await client.get("/api/products", params=search)
    assert first.status_code == 200, first.text
    assert [p["id"] for p in first.json()["items"]] == [product["id"]]
    hits = state.answers.hits
    visitor = f"anon_{unique_slug('searched')}"
    again = await client.get("/api/products", params=search, headers={"X-Anonymous-Id": visitor})
    assert state.answers.hits == hits + 1
    assert again.status_code == 200
    assert again.content == first.content

    await state.ingest.flush()
    async with create_session_factory(engine)() as session:
        rows = (
            await session.exec(
                select(AnalyticsEvent.properties).where(
                    AnalyticsEvent.event == "product_search",
                    AnalyticsEvent.anonymous_id == visitor,
                )
            )
        ).all()
    assert rows == [{"search": "thing", "resultsCount": 1}]
