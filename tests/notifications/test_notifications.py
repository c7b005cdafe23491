"""Notifications on the real stack: the relay's ``notifications`` subscriber writes them
for a real checkout; ``/api/notifications`` lists and marks them; ``/api/events/stream``
pushes them as they commit, and resumes after ``Last-Event-ID``."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory, transaction
from core.events import EventType
from models.notifications import Notification
from models.outbox import OutboxEvent
from services.events.handlers.notifications import notifications_subscriber
from services.events.handling import load_event
from tests.factories import signed_up
from tests.notifications.helpers import SseEvent, next_notification, sse_events, write
from tests.orders.helpers import eventually, paid_order, place, product, shopper_with_cart


async def _listed(
    http: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await http.get("/api/notifications", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_confirmed_order_notifies_its_customer_once(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    shopper, order = await paid_order(http, staff, price=2999)

    async def notified() -> bool:
        total: int = (await _listed(http, shopper.headers))["total"]
        return total >= 1

    await eventually(notified)
    listed = await _listed(http, shopper.headers)
    [confirmed] = [n for n in listed["items"] if n["kind"] == "order_confirmed"]
    assert confirmed["title"] == f"Order {order['id']} confirmed"
    cents = order["totals"]["total"]
    total = f"{cents // 100}.{cents % 100:02d} {order['currency']}"
    assert confirmed["body"] == (
        f"We have your order (1 item, {total}) and will let you know when it ships."
    )
    assert confirmed["data"] == {"orderId": order["id"]}
    assert confirmed["id"].startswith("ntf_")
    assert confirmed["readAt"] is None

    # Delivered again (a replay past the receipt): the handler writes nothing twice.
    sessions = create_session_factory(engine)
    async with transaction(sessions) as session:
        [event_id] = (
            await session.exec(
                select(OutboxEvent.id).where(
                    col(OutboxEvent.aggregate_id) == order["id"],
                    col(OutboxEvent.type) == EventType.ORDER_CREATED,
                )
            )
        ).all()
        event = await load_event(session, event_id)
        await notifications_subscriber().handle(event, session)
        await notifications_subscriber().handle(event, session)
    async with sessions() as session:
        rows = (
            await session.exec(select(Notification).where(col(Notification.event_id) == event_id))
        ).all()
    assert [r.id for r in rows] == [confirmed["id"]]
    again = await _listed(http, shopper.headers)
    assert [n["id"] for n in again["items"] if n["kind"] == "order_confirmed"] == [confirmed["id"]]


async def test_the_list_the_unread_filter_and_marking_read(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(http)
    _, stranger = await signed_up(http)
    ids = [await write(engine, user["id"], f"Notification {n}") for n in range(3)]

    assert (await http.get("/api/notifications")).status_code == 401
    listed = await _listed(http, headers)
    assert [n["id"] for n in listed["items"]] == ids[::-1]  # newest first
    assert (listed["total"], listed["unreadCount"], listed["page"]) == (3, 3, 1)
    second = await _listed(http, headers, limit=2, page=2)
    assert [n["id"] for n in second["items"]] == [ids[0]]
    assert (second["total"], second["unreadCount"]) == (3, 3)
    assert (await _listed(http, stranger))["total"] == 0

    read = await http.post(f"/api/notifications/{ids[1]}/read", headers=headers)
    assert read.status_code == 200, read.text
    assert read.json()["id"] == ids[1]
    assert read.json()["readAt"] is not None
    again = await http.post(f"/api/notifications/{ids[1]}/read", headers=headers)
    assert again.json()["readAt"] == read.json()["readAt"]  # the first time is kept
    unread = await _listed(http, headers, unread="true")
    assert [n["id"] for n in unread["items"]] == [ids[2], ids[0]]
    assert (unread["total"], unread["unreadCount"]) == (2, 2)
    assert (await _listed(http, headers))["unreadCount"] == 2

    # Another user's notification, or none at all: 404, and it stays unread.
    for other in (stranger, headers):
        missing = ids[0] if other is stranger else "ntf_01JEX4Q8Z3K5M7N9P1R3T5V7X9"
        gone = await http.post(f"/api/notifications/{missing}/read", headers=other)
        assert gone.status_code == 404, gone.text
        assert gone.json()["code"] == "notification_not_found"
        assert gone.headers["content-type"].startswith("application/problem+json")
    assert (await _listed(http, headers))["unreadCount"] == 2
    assert (await http.post(f"/api/notifications/{ids[0]}/read")).status_code == 401

    all_read = await http.post("/api/notifications/read-all", headers=headers)
    assert all_read.status_code == 200, all_read.text
    assert all_read.json() == {"marked": 2, "unreadCount": 0}
    assert (await http.post("/api/notifications/read-all", headers=headers)).json() == {
        "marked": 0,
        "unreadCount": 0,
    }
    final = await _listed(http, headers)
    assert final["unreadCount"] == 0
    assert all(n["readAt"] for n in final["items"])
    assert (await _listed(http, headers, unread="true"))["items"] == []
    assert (await http.post("/api/notifications/read-all")).status_code == 401


async def test_the_stream_pushes_a_checkout_and_resumes_after_last_event_id(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    item = await product(http, staff, price=1500)
    shopper = await shopper_with_cart(http, [(item, 2)])
    older = await write(engine, shopper.user["id"], "Written before the stream opened")
    assert (await http.get("/api/events/stream")).status_code == 401
    bad = await http.get(
        "/api/events/stream", headers=shopper.headers | {"Last-Event-ID": "ord_123"}
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_last_event_id"

    async with http.stream(
        "GET", "/api/events/stream", headers=shopper.headers, timeout=60
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream)
        opened = await anext(events)
        assert opened.comment == "connected"  # watching from here on
        placed = await place(http, shopper)
        pushed = await next_notification(events)
    # Only what was written after it opened, and the checkout's confirmation at that.
    assert pushed.id != older
    body = pushed.json()
    assert body["id"] == pushed.id
    assert body["kind"] == "order_confirmed"
    assert body["title"] == f"Order {placed['id']} confirmed"
    assert body["body"].startswith("We have your order (2 items, ")

    # Away: two are written meanwhile; a reconnect with the last id gets both, in order,
    # then live ones.
    missed = [await write(engine, shopper.user["id"], f"While away {n}") for n in range(2)]
    assert pushed.id is not None
    headers = shopper.headers | {"Last-Event-ID": pushed.id}
    async with http.stream("GET", "/api/events/stream", headers=headers, timeout=60) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        resumed = [await next_notification(events) for _ in missed]
        assert [e.id for e in resumed] == missed
        assert [e.json()["title"] for e in resumed] == ["While away 0", "While away 1"]
        live = await write(engine, shopper.user["id"], "Live again")
        assert (await next_notification(events)).id == live
    listed = await _listed(http, shopper.headers)
    assert [n["id"] for n in listed["items"]][:3] == [live, *missed[::-1]]


async def test_a_stream_that_pushed_nothing_yet_still_resumes_without_a_gap(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """An EventSource reconnects with the last `id:` it saw, and with no `Last-Event-ID`
    when it saw none: a stream that has pushed nothing yet tells it where it starts, or
    its reconnect would start from "now" and lose what was written while it was away."""
    user, headers = await signed_up(http)  # no notification yet

    async def opened(resume: str | None) -> SseEvent:
        """The stream's first block, as an EventSource would open it."""
        sent = headers | ({"Last-Event-ID": resume} if resume is not None else {})
        async with http.stream("GET", "/api/events/stream", headers=sent, timeout=60) as s:
            assert s.status_code == 200
            return await anext(sse_events(s))

    first = await opened(None)
    assert first.comment == "connected"
    # Its connection drops; one is written before the EventSource is back.
    away = await write(engine, user["id"], "While reconnecting")
    resume = {"Last-Event-ID": first.id} if first.id is not None else {}
    async with http.stream(
        "GET", "/api/events/stream", headers=headers | resume, timeout=60
    ) as stream:
        events = sse_events(stream)
        assert (await anext(events)).comment == "connected"
        live = await write(engine, user["id"], "After reconnecting")
        assert (await next_notification(events)).id == away  # not lost
        assert (await next_notification(events)).id == live
    # Opened afresh, it starts after the newest one, and says so.
    assert (await opened(None)).id == live


async def test_a_polyfill_resumes_with_the_last_event_id_in_the_query(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """An EventSource polyfill (``event-source-polyfill``) sends the last id back as
    ``?lastEventId=`` on a reconnect, not as a header (which would need a CORS
    preflight): the stream resumes after it as after the header (before: 422
    unknown_parameter, and earlier still ignored, losing what was written while away).
    The header wins when both come; a bad id is refused either way."""
    user, headers = await signed_up(http)
    seen = await write(engine, user["id"], "Seen before the connection dropped")
    missed = await write(engine, user["id"], "While away")
    for sent in (
        {"params": {"lastEventId": seen}},
        {"params": {"lastEventId": "ord_not_read"}, "headers": {"Last-Event-ID": seen}},
    ):
        request = http.stream(
            "GET",
            "/api/events/stream",
            params=sent["params"],
            headers=headers | sent.get("headers", {}),
            timeout=60,
        )
        async with request as stream:
            assert stream.status_code == 200, await stream.aread()
            assert (await next_notification(sse_events(stream))).id == missed
    bad = await http.get("/api/events/stream", headers=headers, params={"lastEventId": "ord_1"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_last_event_id")


async def test_read_all_up_to_what_was_seen_leaves_a_newer_one_unread(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """ "Mark all read" races with a notification written while the customer looks at the
    list: `upTo` (the newest one they saw) marks read only those, not one they never saw."""
    user, headers = await signed_up(http)
    seen = [await write(engine, user["id"], f"Seen {n}") for n in range(3)]
    newest_seen = (await _listed(http, headers))["items"][0]["id"]
    assert newest_seen == seen[-1]
    unseen = await write(engine, user["id"], "Written while they looked")

    marked = await http.post(
        "/api/notifications/read-all", headers=headers, json={"upTo": newest_seen}
    )
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"marked": 3, "unreadCount": 1}
    unread = await _listed(http, headers, unread="true")
    assert [n["id"] for n in unread["items"]] == [unseen]

    for bad in ("ord_01JEX4Q8Z3K5M7N9P1R3T5V7X9", "ntf_not-an-id", ""):
        refused = await http.post(
            "/api/notifications/read-all", headers=headers, json={"upTo": bad}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_notification_id"
    assert (await _listed(http, headers))["unreadCount"] == 1
    # Without `upTo`, every unread one, as before.
    everything = await http.post("/api/notifications/read-all", headers=headers)
    assert everything.json() == {"marked": 1, "unreadCount": 0}
