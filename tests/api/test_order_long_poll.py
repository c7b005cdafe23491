"""GET /api/orders/{id} with ETags, `If-None-Match` and `Prefer: wait` (a long-poll woken
by the order's NOTIFY), and the event stream resumed with `Last-Event-ID`.

The orders are rows written straight to the database and moved by the real
``OrderService.transition`` in committed transactions, as the order workflow's steps do:
what wakes a waiter is PostgreSQL's notification from that commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.notifications import ChannelListener
from core.settings import Settings
from models.orders import Order, OrderStatus, TimelineAudience
from services.analytics import AnalyticsRecorder
from services.order_repository import OrderRepository
from services.orders import OrderService
from tests.factories import signed_up

ADDRESS = {
    "street": "123 Main St",
    "city": "Boston",
    "state": "MA",
    "zip": "02101",
    "country": "US",
}


async def placed_order(engine: AsyncEngine, user: dict[str, Any]) -> str:
    """A ``pending`` order of ``user`` with its first timeline entry, committed."""
    async with transaction(create_session_factory(engine)) as session:
        order = Order(
            user_id=user["id"],
            cart_id=f"cart_{uuid4().hex[:20]}",
            email=user["email"],
            status=OrderStatus.PENDING,
            shipping_address=ADDRESS,
            payment_method_type="card",
            payment_token="pm_card_visa",
        )
        session.add(order)
        await session.flush()
        await OrderRepository(session).add_event(
            order.id, OrderStatus.PENDING, "placed", {}, audience=TimelineAudience.CUSTOMER
        )
        return order.id


async def move(
    engine: AsyncEngine,
    settings: Settings,
    order_id: str,
    status: OrderStatus,
    *,
    unnotified: bool = False,
) -> None:
    """Move the order as a workflow step does (status and timeline entry, one commit).
    ``unnotified``: with triggers off for this transaction, so no NOTIFY is sent (a
    notification lost, as one sent while a listener reconnects is)."""
    async with transaction(create_session_factory(engine)) as session:
        if unnotified:
            conn = await session.connection()
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        service = OrderService(session, settings, AnalyticsRecorder(False))
        order = await service.orders.require(order_id, lock=True)
        assert await service.transition(order, status, f"now {status}")


async def lost_move(
    engine: AsyncEngine, settings: Settings, order_id: str, status: OrderStatus, pid: int | None
) -> None:
    """The move commits with no notification (lost), and the LISTEN connection (backend
    ``pid``) dies."""
    await move(engine, settings, order_id, status, unnotified=True)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the event loop run until ``condition`` holds. The bound is only there to fail
    rather than hang: a loaded machine takes seconds to get a request this far."""
    deadline = asyncio.get_running_loop().time() + 60
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)


async def listening(app: FastAPI) -> ChannelListener:
    """The app's listener, connected before the test's waiter arrives (its first
    connection wakes every waiter, which would blur which wake-up did what)."""
    changes: ChannelListener = app.state.shop.order_changes
    with changes.watch("ord_warm_up"):
        return changes


async def waiting_on(
    client: httpx.AsyncClient,
    changes: ChannelListener,
    order_id: str,
    headers: dict[str, str],
    etag: str,
    *,
    until_statuses: str | None = None,
) -> asyncio.Task[httpx.Response]:
    """A long-poll (``Prefer: wait=30``) from ``etag``, once it waits on the order
    (``until_statuses``: with ``?until=``, for those statuses only)."""
    waiting = asyncio.create_task(
        client.get(
            f"/api/orders/{order_id}",
            params={"until": until_statuses} if until_statuses else None,
            headers=headers | {"If-None-Match": etag, "Prefer": "wait=30"},
        )
    )
    await until(lambda: changes.watching(order_id, idle=True) == 1, "the request waits")
    return waiting


async def test_every_answer_has_an_etag_and_if_none_match_answers_304(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    first = await client.get(url, headers=headers)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    # The same order read again has the same tag; a conditional read of it is a 304.
    assert (await client.get(url, headers=headers)).headers["etag"] == etag
    same = await client.get(url, headers=headers | {"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == etag
    assert "preference-applied" not in same.headers
    for matching in (f"W/{etag}", f'"other", {etag}', "*"):
        answer = await client.get(url, headers=headers | {"If-None-Match": matching})
        assert answer.status_code == 304, matching
    other = await client.get(url, headers=headers | {"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert other.json()["status"] == "pending"

    await move(engine, settings, order_id, OrderStatus.RESERVED)
    moved = await client.get(url, headers=headers | {"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.json()["status"] == "reserved"
    assert moved.headers["etag"] != etag


async def test_a_long_poll_is_woken_by_the_change_and_carries_it(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    etag = (await client.get(url, headers=headers)).headers["etag"]
    changes = await listening(app)
    waiting = await waiting_on(client, changes, order_id, headers, etag)
    delivered = changes.deliveries
    assert not waiting.done()  # unchanged: it waits (for up to 30 s)

    await move(engine, settings, order_id, OrderStatus.RESERVED)
    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "reserved"
    assert answer.json()["timeline"][-1]["status"] == "reserved"
    assert answer.headers["etag"] != etag
    assert answer.headers["preference-applied"] == "wait=30"
    # It was the notification that woke it (not the 30 s running out, nor a re-read): the
    # order row's (with its status) and its timeline entry's, two payloads.
    assert changes.deliveries == delivered + 2
    assert changes.watching(order_id) == 0

    # A client whose tag is already old is answered at once, without waiting.
    stale = await client.get(url, headers=headers | {"If-None-Match": etag, "Prefer": "wait=30"})
    assert stale.status_code == 200
    assert stale.json()["status"] == "reserved"
    assert changes.deliveries == delivered + 2


async def test_a_long_poll_without_a_change_answers_304_when_the_wait_is_over(
    make_client: Callable[..., Any], engine: AsyncEngine
) -> None:
    client: httpx.AsyncClient = await make_client(order_wait_max_seconds=1)
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    etag = (await client.get(url, headers=headers)).headers["etag"]
    # Asked for an hour, given the maximum (1 s here, 30 s by default).
    answer = await client.get(
        url, headers=headers | {"If-None-Match": etag, "Prefer": "respond-async, wait=3600"}
    )
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["etag"] == etag
    assert answer.headers["preference-applied"] == "wait=1"


async def test_bad_preferences_and_tags_are_problems_and_strangers_get_404(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    etag = (await client.get(url, headers=headers)).headers["etag"]
    cases = [
        ({"Prefer": "wait=soon", "If-None-Match": etag}, "invalid_preference"),
        ({"Prefer": "wait=-1", "If-None-Match": etag}, "invalid_preference"),
        ({"Prefer": "wait=", "If-None-Match": etag}, "invalid_preference"),
        ({"If-None-Match": "abc"}, "invalid_if_none_match"),
        ({"If-None-Match": f"{etag} junk"}, "invalid_if_none_match"),
    ]
    for extra, code in cases:
        answer = await client.get(url, headers=headers | extra)
        assert answer.status_code == 400, (extra, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == code, extra
    # Preferences other than wait are ignored, as RFC 7240 says.
    assert (
        await client.get(url, headers=headers | {"Prefer": "return=minimal"})
    ).status_code == 200
    # Someone else's order is not found, and nobody waits on it.
    _, stranger = await signed_up(client)
    for path in (url, f"{url}/events"):
        answer = await client.get(
            path, headers=stranger | {"If-None-Match": etag, "Prefer": "wait=30"}
        )
        assert answer.status_code == 404
        assert answer.json()["code"] == "order_not_found"


async def test_a_lost_notification_is_made_good_when_the_listener_reconnects(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    etag = (await client.get(url, headers=headers)).headers["etag"]
    changes = await listening(app)
    waiting = await waiting_on(client, changes, order_id, headers, etag)
    connections, delivered, pid = changes.connections, changes.deliveries, changes.backend_pid

    await lost_move(engine, settings, order_id, OrderStatus.RESERVED, pid)

    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "reserved"
    # Woken by the reconnection's re-check, not by a notification.
    assert changes.connections == connections + 1
    assert changes.deliveries == delivered
    assert changes.backend_pid not in (None, pid)

    # Listening again: the next change is delivered as usual.
    etag = answer.headers["etag"]
    waiting = await waiting_on(client, changes, order_id, headers, etag)
    await move(engine, settings, order_id, OrderStatus.PAYMENT_AUTHORIZED)
    answer = await waiting
    assert answer.json()["status"] == "payment_authorized"
    # The order row's notification (with its status) and its timeline entry's.
    assert changes.deliveries == delivered + 2


async def streaming_from_placed(
    client: httpx.AsyncClient, app: FastAPI, order_id: str, headers: dict[str, str]
) -> asyncio.Task[httpx.Response]:
    """The order's event stream resumed from the state the client has (its placed state:
    not sent again), once it follows the order."""
    url = f"/api/orders/{order_id}"
    placed_tag = (await client.get(url, headers=headers)).headers["etag"].strip('"')
    changes = await listening(app)
    streaming = asyncio.create_task(
        client.get(f"{url}/events", headers=headers | {"Last-Event-ID": placed_tag})
    )
    await until(lambda: changes.watching(order_id, idle=True) == 1, "the stream follows the order")
    return streaming


def _events(body: str) -> list[dict[str, str]]:
    events = []
    for block in body.split("\r\n\r\n" if "\r\n" in body else "\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            if name:
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append(fields)
    return events


async def test_the_event_stream_resumes_after_last_event_id_and_stops_when_settled(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    streaming = await streaming_from_placed(client, app, order_id, headers)
    for status in (OrderStatus.RESERVED, OrderStatus.CONFIRMED, OrderStatus.FULFILLMENT_QUEUED):
        await move(engine, settings, order_id, status)
    answer = await streaming  # ends by itself: the order settled
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _events(answer.text)
    statuses = [json.loads(e["data"])["status"] for e in events]
    assert statuses, answer.text
    assert "pending" not in statuses, statuses
    assert statuses[-1] == "fulfillment_queued"
    assert all(e["event"] == "order" for e in events)
    final = await client.get(url, headers=headers)
    assert events[-1]["id"] == final.headers["etag"].strip('"')
    # Reconnecting with the final state's id: nothing left to follow.
    again = await client.get(f"{url}/events", headers=headers | {"Last-Event-ID": events[-1]["id"]})
    assert again.status_code == 204
    # Without it, a settled order's stream is its current state, then the end.
    fresh = _events((await client.get(f"{url}/events", headers=headers)).text)
    assert [e["id"] for e in fresh] == [events[-1]["id"]]
