"""GET /api/orders/{id}?until=…: a long-poll answered only at the statuses the client waits
for (or once the order settles), woken by the order's NOTIFY like any long-poll."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.notifications import ChannelListener
from core.settings import Settings
from models.orders import OrderStatus
from tests.api.test_order_long_poll import (
    listening,
    lost_move,
    move,
    placed_order,
    until,
    waiting_on,
)
from tests.factories import signed_up


def notified_since(changes: ChannelListener, delivered: int) -> bool:
    return changes.deliveries > delivered


def notified_or_reconnected(changes: ChannelListener, delivered: int, connections: int) -> bool:
    return notified_since(changes, delivered) or changes.connections > connections


async def waiting_until(
    client: httpx.AsyncClient, app: FastAPI, order_id: str, headers: dict[str, str], statuses: str
) -> asyncio.Task[httpx.Response]:
    """A long-poll for ``statuses`` from the order's current ETag, once it waits."""
    etag = (await client.get(f"/api/orders/{order_id}", headers=headers)).headers["etag"]
    changes = await listening(app)
    return await waiting_on(client, changes, order_id, headers, etag, until_statuses=statuses)


async def test_it_answers_at_the_status_asked_for_and_not_before(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    changes: ChannelListener = app.state.shop.order_changes
    waiting = await waiting_until(client, app, order_id, headers, "confirmed")
    delivered = changes.deliveries

    # Each change wakes the waiter (it looks again), but none is what it waits for.
    for status in (OrderStatus.RESERVED, OrderStatus.PAYMENT_AUTHORIZED):
        await move(engine, settings, order_id, status)
        await until(partial(notified_since, changes, delivered), f"{status} is notified")
        await until(lambda: changes.watching(order_id, idle=True) == 1, "it waits again")
        delivered = changes.deliveries
        assert not waiting.done(), status

    await move(engine, settings, order_id, OrderStatus.CONFIRMED)
    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "confirmed"
    # The answer is the whole order, with the steps it passed meanwhile.
    assert [e["status"] for e in answer.json()["timeline"]] == [
        "pending",
        "reserved",
        "payment_authorized",
        "confirmed",
    ]
    assert answer.headers["preference-applied"] == "wait=30"
    assert answer.headers["etag"] == (await client.get(url, headers=headers)).headers["etag"]
    assert changes.watching(order_id) == 0

    # Already at a status asked for, and the client's copy is older: answered at once,
    # with or without If-None-Match.
    for extra in ({"If-None-Match": '"older"'}, {}):
        at_once = await client.get(
            url,
            params={"until": "reserved,confirmed"},
            headers=headers | extra | {"Prefer": "wait=30"},
        )
        assert at_once.status_code == 200, extra
        assert at_once.json()["status"] == "confirmed"
    assert changes.watching(order_id) == 0


@pytest.mark.parametrize(
    "ending", [OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.FULFILLMENT_QUEUED]
)
async def test_a_settled_order_always_answers(
    client: httpx.AsyncClient,
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    ending: OrderStatus,
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    await move(engine, settings, order_id, OrderStatus.RESERVED)
    # It will never be confirmed now; the waiter hears how it ended.
    waiting = await waiting_until(client, app, order_id, headers, "confirmed")
    await move(engine, settings, order_id, ending)
    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == ending.value


async def test_when_the_wait_runs_out_it_is_304_or_the_order_as_it_is(
    make_client: Callable[..., Any], engine: AsyncEngine, settings: Settings
) -> None:
    client: httpx.AsyncClient = await make_client(order_wait_max_seconds=1)
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    etag = (await client.get(url, headers=headers)).headers["etag"]
    conditional = headers | {"If-None-Match": etag, "Prefer": "wait=30"}
    # Unchanged: 304, as any long-poll that ran out.
    answer = await client.get(url, params={"until": "confirmed"}, headers=conditional)
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["etag"] == etag
    assert answer.headers["preference-applied"] == "wait=1"
    # Changed, but not to a status asked for: not answered at the change; when the wait
    # is over, the order as it is now (a 304 would say it had not changed).
    await move(engine, settings, order_id, OrderStatus.RESERVED)
    answer = await client.get(url, params={"until": "confirmed"}, headers=conditional)
    assert answer.status_code == 200
    assert answer.json()["status"] == "reserved"
    assert answer.headers["etag"] != etag


@pytest.mark.parametrize("value", ["confirmd", "confirmed,shipping", "", "confirmed,"])
async def test_an_unknown_status_is_a_422_naming_until(
    client: httpx.AsyncClient, engine: AsyncEngine, value: str
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    answer = await client.get(
        f"/api/orders/{order_id}",
        params={"until": value},
        headers=headers | {"Prefer": "wait=30"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "invalid_until"
    assert problem["field"] == "until"
    assert problem["detail"].startswith("until: ")


async def test_until_is_documented_with_its_error_code(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    operation = spec["paths"]["/api/orders/{order_id}"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "until"]
    assert parameter["in"] == "query"
    assert parameter["examples"]["confirmed"]["value"] == "confirmed"
    codes = operation["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert "invalid_until" in str(codes)


async def test_reading_an_order_opens_no_transaction_but_the_long_polls_snapshot(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    """The caller and the order are read in autocommit (a round trip each, no BEGIN and
    ROLLBACK around them, issue #15); only the long-poll's answer is read in one
    REPEATABLE READ snapshot (its ETag never comes from a torn state)."""
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    await move(engine, settings, order_id, OrderStatus.CONFIRMED)
    levels: list[tuple[str, str]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        levels.append((conn.get_execution_options().get("isolation_level", "?"), statement))

    url = f"/api/orders/{order_id}"
    app_engine = app.state.shop.engine.sync_engine
    event.listen(app_engine, "before_cursor_execute", record)
    try:
        plain = await client.get(url, headers=headers)
        assert plain.status_code == 200, plain.text
        reads = list(levels)
        levels.clear()
        polled = await client.get(
            url, params={"until": "confirmed"}, headers=headers | {"Prefer": "wait=30"}
        )
        assert polled.status_code == 200, polled.text
    finally:
        event.remove(app_engine, "before_cursor_execute", record)

    assert reads, "the GET read nothing"
    assert {level for level, _ in reads} == {"AUTOCOMMIT"}, reads
    assert {level for level, _ in levels} == {"AUTOCOMMIT", "REPEATABLE READ"}, levels
    snapshot = [s for level, s in levels if level == "REPEATABLE READ"]
    assert "FROM orders" in snapshot[0], snapshot


async def test_a_waiter_knows_the_status_from_the_notification_and_reads_nothing_meanwhile(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    """The order row's notification carries its status: a change that is not a status
    asked for wakes the waiter, which reads nothing (issue #15: one status read per
    wake-up was the long-poll's most frequent statement)."""
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    changes: ChannelListener = app.state.shop.order_changes
    waiting = await waiting_until(client, app, order_id, headers, "confirmed")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    app_engine = app.state.shop.engine.sync_engine
    connections = changes.connections
    event.listen(app_engine, "before_cursor_execute", record)
    try:
        for status in (OrderStatus.RESERVED, OrderStatus.PAYMENT_AUTHORIZED):
            delivered = changes.deliveries
            await move(engine, settings, order_id, status)
            # (or the listener reconnected: a probe timed out on a loaded machine)
            await until(
                partial(notified_or_reconnected, changes, delivered, connections),
                f"{status} is notified",
            )
            await until(lambda: changes.watching(order_id, idle=True) == 1, "it waits again")
            assert not waiting.done(), status
        # A reconnection makes it read the status again, by design (see the next test).
        if changes.connections == connections:
            assert statements == []
        await move(engine, settings, order_id, OrderStatus.CONFIRMED)
        answer = await waiting
    finally:
        event.remove(app_engine, "before_cursor_execute", record)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "confirmed"
    assert statements, "the answer is read"


async def test_after_a_lost_connection_the_waiter_reads_the_status_again(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    """A status heard before the LISTEN connection dropped is not trusted: the change to
    a status asked for, committed while nobody listened, still answers."""
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    changes: ChannelListener = app.state.shop.order_changes
    waiting = await waiting_until(client, app, order_id, headers, "confirmed")
    delivered, connections = changes.deliveries, changes.connections
    await move(engine, settings, order_id, OrderStatus.RESERVED)
    # On a loaded machine the listener may reconnect meanwhile (a probe timed out): the
    # notification is then lost and the waiter reads the status instead, as designed.
    await until(
        partial(notified_or_reconnected, changes, delivered, connections),
        "reserved is notified (or the listener reconnected and it was read)",
    )
    await until(lambda: changes.watching(order_id, idle=True) == 1, "it waits again")
    await lost_move(engine, settings, order_id, OrderStatus.CONFIRMED, changes.backend_pid)

    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "confirmed"
