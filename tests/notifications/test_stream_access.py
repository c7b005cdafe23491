"""A live stream is served only as long as the token that opened it: it ends when that
token is revoked (signed out) or expires, instead of pushing to a signed-out client for
as long as its connection stays; the client resumes with a fresh token and
``Last-Event-ID`` and misses nothing. Over real HTTP (an SSE response never ends for an
in-process transport), API only: nothing moves the orders here but the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.stack.process import free_port
from core.secrets import jwt_secret
from core.settings import Settings
from models.orders import OrderStatus
from models.users import Role
from services.tokens import AccessTokens, new_session_id
from tests.api.test_order_long_poll import move, placed_order
from tests.factories import bearer, login, promote, register, signed_up
from tests.live import live_api
from tests.notifications.helpers import next_notification, sse_events, until_it_ends, write

# Revocation is asked this often while a stream stays open (15 s by default).
CHECK_SECONDS = 0.2


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[str]:
    quick = Settings.model_validate(
        settings.model_dump()
        | {"shop_api_port": free_port(), "stream_token_check_seconds": CHECK_SECONDS}
    )
    async with live_api(quick) as base_url:
        yield base_url


@pytest.fixture
async def http(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        yield client


async def test_signing_out_ends_the_notification_stream_and_a_fresh_token_resumes(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(http)
    first = await write(engine, user["id"], "Before signing out")
    async with http.stream(
        "GET", "/api/events/stream", headers=headers | {"Last-Event-ID": "ntf_" + "0" * 26}
    ) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        assert (await next_notification(events)).id == first
        signed_out = await http.post("/api/auth/logout", headers=headers)
        assert signed_out.status_code == 204, signed_out.text
        await until_it_ends(events)

    # The EventSource reconnects: its token is refused now.
    again = await http.get("/api/events/stream", headers=headers)
    assert again.status_code == 401
    assert again.json()["code"] == "token_revoked"
    # Signed in again, it resumes after the last one it had: nothing is lost.
    missed = await write(engine, user["id"], "While signed out")
    fresh = bearer(await login(http, email=user["email"]))
    async with http.stream(
        "GET", "/api/events/stream", headers=fresh | {"Last-Event-ID": first}
    ) as stream:
        assert stream.status_code == 200
        assert (await next_notification(sse_events(stream))).id == missed


async def test_the_notification_stream_ends_when_its_token_expires(
    http: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    user = await register(http)
    # A token that expires two seconds from now (the API's own are good for minutes).
    token, _ = AccessTokens(jwt_secret(settings), 2).issue(
        user["id"], Role.CUSTOMER, new_session_id()
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("GET", "/api/events/stream", headers=headers) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        assert (await anext(events)).comment == "connected"
        written = await write(engine, user["id"], "While the token is good")
        assert (await next_notification(events)).id == written
        await until_it_ends(events)
    expired = await http.get("/api/events/stream", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["code"] == "token_expired"


async def test_signing_out_ends_an_order_stream(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(http)
    order_id = await placed_order(engine, user)  # pending: its stream would not settle
    url = f"/api/orders/{order_id}/events"
    async with http.stream("GET", url, headers=headers) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        opened = await anext(events)
        assert opened.event == "order"
        order: dict[str, Any] = opened.json()
        assert order["status"] == "pending"
        assert (await http.post("/api/auth/logout", headers=headers)).status_code == 204
        await until_it_ends(events)
    assert (await http.get(url, headers=headers)).json()["code"] == "token_revoked"


async def test_a_demoted_staff_member_loses_a_customers_order_stream(
    http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """A staff member follows a customer's order; removed from staff, the stream went on
    until the token expired (only revocation was checked). Their own order stays theirs
    whatever their role: its stream, opened as staff (staff-only timeline entries in it),
    ends too, and a reconnect with its last event id follows it as the customer."""
    customer, _ = await signed_up(http)
    order_id = await placed_order(engine, customer)  # pending: its stream would not settle
    member = await register(http, name="Staff Member")
    await promote(engine, member["id"], Role.STAFF)
    headers = bearer(await login(http, email=member["email"]))
    own_order = await placed_order(engine, member)
    async with (
        http.stream("GET", f"/api/orders/{order_id}/events", headers=headers) as staff_stream,
        http.stream("GET", f"/api/orders/{own_order}/events", headers=headers) as own_stream,
    ):
        assert (staff_stream.status_code, own_stream.status_code) == (200, 200)
        events, own_events = sse_events(staff_stream), sse_events(own_stream)
        assert (await anext(events)).json()["id"] == order_id
        opened = await anext(own_events)
        assert opened.json()["id"] == own_order
        await promote(engine, member["id"], Role.CUSTOMER)
        await until_it_ends(events)
        await until_it_ends(own_events)
    # The member's own order: reconnected, it reads as the customer they now are.
    resumed = headers | {"Last-Event-ID": opened.id or ""}
    async with http.stream("GET", f"/api/orders/{own_order}/events", headers=resumed) as own:
        assert own.status_code == 200
        own_events = sse_events(own)
        await move(engine, settings, own_order, OrderStatus.RESERVED)
        async with asyncio.timeout(60):
            moved = await anext(own_events)
            while moved.event != "order" or moved.json()["status"] != "reserved":
                moved = await anext(own_events)
        assert all(entry["audience"] == "customer" for entry in moved.json()["timeline"])
    again = await http.get(f"/api/orders/{order_id}/events", headers=headers)
    assert (again.status_code, again.json()["code"]) == (404, "order_not_found")
