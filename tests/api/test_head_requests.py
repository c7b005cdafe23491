"""HEAD answers as GET would, without the body (api/head_requests.py)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.state import AppState
from core.db import create_session_factory
from core.settings import Settings
from models.analytics import AnalyticsEvent
from tests.api.test_order_long_poll import until
from tests.factories import signed_up, stocked_product, unique_slug


async def test_head_answers_the_status_and_headers_of_get(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/categories", "/api/products?limit=2"):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == got.status_code == 200, (path, head.text)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["x-request-id"].startswith("req_")


async def test_head_of_a_signed_in_resource_checks_the_caller(client: httpx.AsyncClient) -> None:
    _, auth = await signed_up(client)
    me = await client.head("/api/users/me", headers=auth)
    assert me.status_code == 200
    assert me.content == b""
    anonymous = await client.head("/api/users/me")
    assert anonymous.status_code == 401
    assert anonymous.content == b""


async def test_head_of_what_has_no_get_answers_as_get_would(client: httpx.AsyncClient) -> None:
    missing = await client.head("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.content == b""
    post_only = await client.head("/api/auth/login")
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST, OPTIONS"


async def test_head_of_an_event_stream_ends_and_gives_its_slot_back(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A stream answers its headers and ends: more HEADs than a user may hold streams
    open all answer 200, none 429 too_many_streams (nor hangs)."""
    _, auth = await signed_up(client)
    for _ in range(settings.stream_max_per_user + 2):
        head = await client.head("/api/events/stream", headers=auth)
        assert head.status_code == 200, head.text
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""


async def test_head_is_counted_as_head_on_its_route(client: httpx.AsyncClient) -> None:
    await client.head("/health")
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{method="HEAD",route="/health",status="200"}' in metrics


async def test_a_head_of_a_product_or_a_search_records_no_analytics_event(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, staff: dict[str, str]
) -> None:
    """A HEAD (a link checker, an uptime monitor, a CDN revalidating) viewed nothing: no
    ``product_view`` nor ``product_search``, whichever way the read is answered (a guest's
    first read, a guest's answer kept and sent again, a signed-in caller's full read). A
    GET still records; a HEAD keeps the whole answer for the next GET, not its empty body."""
    state: AppState = app.state.shop
    await until(lambda: state.stock.live, "the stock view listens")
    await until(lambda: state.catalog_version.known is not None, "the version is held")
    category = await client.post(
        "/api/categories", headers=staff, json={"name": "Clocks", "slug": unique_slug("clocks")}
    )
    assert category.status_code == 201, category.text
    product = await stocked_product(
        client, staff, price=1500, stock=3, categoryId=category.json()["id"]
    )
    detail = f"/api/products/{product['id']}"
    search = {"search": "thing", "category": product["categoryId"]}
    user, auth = await signed_up(client)
    head_visitor = f"anon_{unique_slug('head')}"
    get_visitor = f"anon_{unique_slug('get')}"

    hits = state.answers.hits
    heads = []
    for _ in range(2):  # the first read, then its kept answer
        guest = {"X-Anonymous-Id": head_visitor}
        heads.append(await client.head(detail, headers=guest))
        heads.append(await client.head("/api/products", params=search, headers=guest))
    heads.append(await client.head(detail, headers=auth))
    heads.append(await client.head("/api/products", params=search, headers=auth))
    assert [h.status_code for h in heads] == [200] * 6
    assert all(h.content == b"" for h in heads)
    assert state.answers.hits == hits + 2

    guest = {"X-Anonymous-Id": get_visitor}
    viewed = await client.get(detail, headers=guest)
    searched = await client.get("/api/products", params=search, headers=guest)
    assert state.answers.hits == hits + 4  # the answers the HEADs kept
    assert viewed.json()["id"] == product["id"]
    assert [p["id"] for p in searched.json()["items"]] == [product["id"]]
    assert viewed.headers["content-length"] == heads[0].headers["content-length"]
    assert searched.headers["content-length"] == heads[1].headers["content-length"]

    await state.ingest.flush()
    async with create_session_factory(engine)() as session:
        rows = (
            await session.exec(
                select(AnalyticsEvent.event, AnalyticsEvent.anonymous_id).where(
                    col(AnalyticsEvent.event).in_(["product_view", "product_search"]),
                    col(AnalyticsEvent.anonymous_id).in_([head_visitor, get_visitor])
                    | (AnalyticsEvent.user_id == user["id"]),
                )
            )
        ).all()
    assert sorted(rows) == [("product_search", get_visitor), ("product_view", get_visitor)]
