"""The ``lifetime_value`` subscriber: orders add, refunds and cancellations take out, each
event once, whatever order a cancelled order's refund and cancellation arrive in."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.settings import Settings
from models.customers import LedgerKind, LifetimeValueEntry
from models.outbox import OutboxEvent
from services.analytics import AnalyticsRecorder
from services.customers import (
    LifetimeValueEventInvalid,
    LifetimeValueService,
    plan_entry,
    summarize,
)
from services.events.handlers.lifetime_value import LIFETIME_VALUE
from services.events.handling import handle_once
from services.events.subscribers import DomainEvent, Subscriber
from services.orders import OrderService
from tests.events.customers import (
    create_customer,
    create_order,
    customer,
    deliver_twice,
    delivered,
    order_cancelled,
    order_created,
    payment_refunded,
    published,
)
from tests.factories import signed_up, staff_headers

CREATED, CANCELLED, REFUNDED = (
    EventType.ORDER_CREATED,
    EventType.ORDER_CANCELLED,
    EventType.PAYMENT_REFUNDED,
)


async def _entries(sessions: SessionFactory, user_id: str) -> list[LifetimeValueEntry]:
    async with sessions() as session:
        rows = await session.exec(
            select(LifetimeValueEntry).where(LifetimeValueEntry.user_id == user_id)
        )
        return list(rows.all())


async def test_an_order_counts_once_when_delivered_twice(db_sessions: SessionFactory) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=12_345)
    event_id = await published(db_sessions, CREATED, order.id, order_created(order))

    await deliver_twice(db_sessions, event_id)

    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.lifetime_value_currency, row.orders_count) == (12_345, "USD", 1)
    assert row.first_order_at is not None
    assert row.first_order_at == row.last_order_at
    # The same order published again (a writer retried) is not a second order either.
    again = await published(db_sessions, CREATED, order.id, order_created(order))
    await deliver_twice(db_sessions, again)
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (12_345, 1)
    entries = await _entries(db_sessions, user.id)
    assert [(e.event_id, e.kind, e.amount, e.orders_delta) for e in entries] == [
        (event_id, LedgerKind.ORDER, 12_345, 1)
    ]


async def test_orders_add_up_and_set_first_and_last_order(db_sessions: SessionFactory) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        first = await create_order(session, user, total=1_000)
        second = await create_order(session, user, total=2_500)
    first_event = await published(db_sessions, CREATED, first.id, order_created(first))
    second_event = await published(db_sessions, CREATED, second.id, order_created(second))
    await deliver_twice(db_sessions, first_event)
    await deliver_twice(db_sessions, second_event)

    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (3_500, 2)
    assert row.first_order_at is not None
    assert row.last_order_at is not None
    assert row.first_order_at < row.last_order_at


async def test_a_refund_takes_its_amount_out_once(db_sessions: SessionFactory) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=5_000)
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    refund = await published(db_sessions, REFUNDED, order.id, payment_refunded(order, 1_200))

    await deliver_twice(db_sessions, refund)

    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (3_800, 1)
    # More than the order still counts is capped at what it counts: never below zero.
    too_much = await published(db_sessions, REFUNDED, order.id, payment_refunded(order, 9_999))
    await deliver_twice(db_sessions, too_much)
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (0, 1)
    assert sorted(e.amount for e in await _entries(db_sessions, user.id)) == [-3_800, -1_200, 5_000]


@pytest.mark.parametrize("refund_first", [True, False], ids=["refund-first", "cancel-first"])
async def test_a_cancelled_refunded_order_is_taken_out_once_in_either_order(
    db_sessions: SessionFactory, refund_first: bool
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        kept = await create_order(session, user, total=700)
        order = await create_order(session, user, total=4_000)
    await delivered(db_sessions, CREATED, kept.id, order_created(kept))
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    refund = await published(db_sessions, REFUNDED, order.id, payment_refunded(order, 4_000))
    cancel = await published(db_sessions, CANCELLED, order.id, order_cancelled(order))

    for event_id in (refund, cancel) if refund_first else (cancel, refund):
        await deliver_twice(db_sessions, event_id)

    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (700, 1)
    assert row.first_order_at == row.last_order_at  # only the kept order still counts
    kinds = sorted((e.kind, e.amount) for e in await _entries(db_sessions, user.id))
    expected_refund = [(LedgerKind.REFUND, -4_000)] if refund_first else []
    assert kinds == sorted(
        [
            (LedgerKind.ORDER, 700),
            (LedgerKind.ORDER, 4_000),
            (LedgerKind.CANCELLATION, 0 if refund_first else -4_000),
            *expected_refund,
        ]
    )


async def test_a_partly_refunded_order_cancelled_takes_out_the_rest(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=3_000)
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    await delivered(db_sessions, REFUNDED, order.id, payment_refunded(order, 500))
    await delivered(db_sessions, CANCELLED, order.id, order_cancelled(order))
    # The rest of the money comes back as a refund after the cancellation: nothing left.
    await delivered(db_sessions, REFUNDED, order.id, payment_refunded(order, 2_500))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (0, 0)
    assert (row.first_order_at, row.last_order_at) == (None, None)


async def test_an_order_cancelled_before_it_counted_never_counts(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=2_000)
    await delivered(db_sessions, CANCELLED, order.id, order_cancelled(order))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (0, 0)
    # A late or replayed order.created of the cancelled order: the cancellation entry
    # keeps it out.
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (0, 0)
    assert [(e.kind, e.amount) for e in await _entries(db_sessions, user.id)] == [
        (LedgerKind.CANCELLATION, 0)
    ]


async def test_a_replayed_order_created_after_the_cancellation_counts_nothing(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=2_000)
    created = await published(db_sessions, CREATED, order.id, order_created(order))
    await deliver_twice(db_sessions, created)
    await delivered(db_sessions, CANCELLED, order.id, order_cancelled(order))
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (0, 0)


async def test_a_bad_event_is_a_business_error_and_leaves_no_receipt(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=100)
    bad = order_created(order) | {"total": -5}
    event_id = await published(db_sessions, CREATED, order.id, bad)
    with pytest.raises(LifetimeValueEventInvalid) as caught:
        await handle_once(db_sessions, LIFETIME_VALUE, event_id)
    assert not caught.value.retryable  # a dead letter at once
    assert (await customer(db_sessions, user.id)).orders_count == 0
    assert await _entries(db_sessions, user.id) == []


def _event(type: EventType, order_id: str, at: datetime, **data: object) -> DomainEvent:
    return DomainEvent(
        id=f"evt_{type}_{at.timestamp()}",
        type=type,
        aggregate_type="order",
        aggregate_id=order_id,
        seq=1,
        data={"orderId": order_id, **data},
        created_at=at,
    )


def test_other_currencies_stay_in_the_ledger_and_count_as_orders() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    usd = plan_entry(
        _event(CREATED, "ord_1", start, userId="u", total=1_000, currency="USD"), "u", []
    )
    eur = plan_entry(
        _event(CREATED, "ord_2", start + timedelta(days=1), userId="u", total=900, currency="eur"),
        "u",
        [],
    )
    assert usd is not None
    assert eur is not None
    totals = summarize([usd, eur])
    assert (totals.lifetime_value, totals.currency, totals.orders_count) == (1_000, "USD", 2)
    assert totals.by_currency == {"USD": 1_000, "EUR": 900}
    assert totals.last_order_at == start + timedelta(days=1)
    with pytest.raises(LifetimeValueEventInvalid):
        plan_entry(_event(REFUNDED, "ord_2", start, amount=100, currency="USD"), "u", [eur])


async def test_the_customer_and_staff_see_the_lifetime_value(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, auth = await signed_up(client)
    sessions = create_session_factory(engine)  # committed: the API must see it
    async with transaction(sessions) as session:
        row = await customer(sessions, user["id"])
        order = await create_order(session, row, total=4_321)
    await deliver_twice(
        sessions, await published(sessions, CREATED, order.id, order_created(order))
    )

    me = (await client.get("/api/users/me", headers=auth)).json()
    assert me["lifetimeValue"] == 4_321
    assert me["lifetimeValueCurrency"] == "USD"
    assert me["ordersCount"] == 1
    assert me["firstOrderAt"] == me["lastOrderAt"]
    assert me["lastOrderAt"] is not None
    staff = await staff_headers(client, engine)
    seen = (await client.get(f"/api/users/{user['id']}", headers=staff)).json()
    assert (seen["lifetimeValue"], seen["ordersCount"]) == (4_321, 1)
    _, fresh_auth = await signed_up(client)
    blank = (await client.get("/api/users/me", headers=fresh_auth)).json()
    assert (blank["lifetimeValue"], blank["ordersCount"], blank["lastOrderAt"]) == (0, 0, None)


async def test_two_orders_of_one_customer_handled_at_once_both_count(
    engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(engine)  # committed, separate connections
    async with transaction(sessions) as session:
        user = await create_customer(session)
        first = await create_order(session, user, total=100)
        second = await create_order(session, user, total=200)
    held = await published(sessions, CREATED, first.id, order_created(first))
    other = await published(sessions, CREATED, second.id, order_created(second))
    entered = asyncio.Event()

    async def slow_to_commit(event: DomainEvent, session: AsyncSession) -> None:
        await LifetimeValueService(session).record(event)
        entered.set()
        await asyncio.sleep(0.5)  # the other order is handled meanwhile

    slow = Subscriber("lifetime_value", LIFETIME_VALUE.event_types, slow_to_commit)

    async def the_other_order() -> bool:
        await entered.wait()
        return await handle_once(sessions, LIFETIME_VALUE, other)

    handled = await asyncio.gather(handle_once(sessions, slow, held), the_other_order())

    assert list(handled) == [True, True]
    row = await customer(sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (300, 2)


@pytest.mark.parametrize(
    ("earlier", "total", "score"),
    [
        (30_000, 1_000, 10),  # the customer's earlier orders: +10
        (20_000, 10_000, 10),  # this order's value (+10) does not count twice
    ],
)
async def test_fulfilment_priority_reads_the_customers_other_orders(
    db_sessions: SessionFactory, settings: Settings, earlier: int, total: int, score: int
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        before = await create_order(session, user, total=earlier)
        order = await create_order(session, user, total=total)
    for placed in (before, order):  # this order's own order.created handled too
        await delivered(db_sessions, CREATED, placed.id, order_created(placed))

    async with transaction(db_sessions) as session:
        await OrderService(session, settings, AnalyticsRecorder(False)).queue_fulfillment(order.id)

    async with db_sessions() as session:
        ready = (
            await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.aggregate_id == order.id,
                    OutboxEvent.type == EventType.FULFILLMENT_ORDER_READY,
                )
            )
        ).one()
    assert ready.data["priority"] == score


@pytest.mark.parametrize("ending", [EventType.PAYMENT_FAILED, EventType.ORDER_FAILED])
async def test_an_order_that_fails_after_it_counted_is_taken_out(
    db_sessions: SessionFactory, ending: EventType
) -> None:
    # create-order published order.created, then the capture failed: the order unwinds.
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        kept = await create_order(session, user, total=1_500)
        order = await create_order(session, user, total=7_000)
    await delivered(db_sessions, CREATED, kept.id, order_created(kept))
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    failed = order_cancelled(order) | {"failureCode": "capture_failed", "reason": "expired"}
    await delivered(db_sessions, ending, order.id, failed)

    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (1_500, 1)
    kinds = sorted((e.kind, e.amount) for e in await _entries(db_sessions, user.id))
    assert kinds == sorted(
        [(LedgerKind.ORDER, 1_500), (LedgerKind.ORDER, 7_000), (LedgerKind.CANCELLATION, -7_000)]
    )


async def test_the_projection_reads_the_ledger_once_so_a_concurrent_commit_never_doubles(
    db_sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marketing contact's values: ``project`` racing the lifetime_value subscriber's
    commit of the same event must count the order once, whichever read sees the commit."""
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=3_255)
    event_id = await published(db_sessions, CREATED, order.id, order_created(order))
    await deliver_twice(db_sessions, event_id)  # lifetime_value has committed the order's entry

    async with db_sessions() as session:
        event = await session.get(OutboxEvent, event_id)
        assert event is not None
        service = LifetimeValueService(session)
        real = service.ledger.order_entries

        async def before_the_commit(order_id: str) -> list[LifetimeValueEntry]:
            # A read taken just before the other subscriber committed: no entry yet.
            return [e for e in await real(order_id) if e.event_id != event_id]

        monkeypatch.setattr(service.ledger, "order_entries", before_the_commit)
        projection = await service.project(
            DomainEvent(
                id=event.id,
                type=EventType(event.type),
                aggregate_type=event.aggregate_type,
                aggregate_id=event.aggregate_id,
                seq=event.seq or 0,
                data=event.data,
                created_at=event.created_at,
            )
        )
    assert projection is not None
    assert (projection.totals.lifetime_value, projection.totals.orders_count) == (3_255, 1)
