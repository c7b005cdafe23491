"""A refund that bounced (``payment.refund_failed``) gives the order back what it took
out of the customer's lifetime value, once, never above the order's total; refunded
again, it is taken out again."""

from __future__ import annotations

from sqlmodel import select

from core.db import SessionFactory, transaction
from core.events import EventType
from models.customers import LedgerKind, LifetimeValueEntry
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
    refund_failed,
)

CREATED, CANCELLED, REFUNDED, BOUNCED = (
    EventType.ORDER_CREATED,
    EventType.ORDER_CANCELLED,
    EventType.PAYMENT_REFUNDED,
    EventType.PAYMENT_REFUND_FAILED,
)


async def _kinds(sessions: SessionFactory, user_id: str) -> list[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.exec(
            select(LifetimeValueEntry).where(LifetimeValueEntry.user_id == user_id)
        )
        return sorted((e.kind, e.amount) for e in rows.all())


async def test_a_refund_that_bounces_gives_the_value_back_once(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=5_000)
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    await delivered(db_sessions, REFUNDED, order.id, payment_refunded(order, 3_000))
    assert (await customer(db_sessions, user.id)).lifetime_value == 2_000

    bounced = await published(db_sessions, BOUNCED, order.id, refund_failed(order, 3_000))
    await deliver_twice(db_sessions, bounced)  # redelivered: entered once

    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (5_000, 1)
    assert await _kinds(db_sessions, user.id) == sorted(
        [(LedgerKind.ORDER, 5_000), (LedgerKind.REFUND, -3_000), (LedgerKind.REFUND_FAILED, 3_000)]
    )
    # Another event for the same bounce (a replay under a new id) cannot lift the order
    # above its total: nothing is left taken out.
    await delivered(db_sessions, BOUNCED, order.id, refund_failed(order, 3_000))
    assert (await customer(db_sessions, user.id)).lifetime_value == 5_000
    # Refunded again by staff: the refund rule takes it out again.
    await delivered(db_sessions, REFUNDED, order.id, payment_refunded(order, 3_000))
    assert (await customer(db_sessions, user.id)).lifetime_value == 2_000


async def test_a_cancelled_orders_bounced_refund_counts_until_it_is_refunded_again(
    db_sessions: SessionFactory,
) -> None:
    """The cancellation took the order out and its refund then found nothing to take: the
    bounce gives back what the cancellation took (the shop holds the money again), not the
    order; refunded again, the customer ends where they started."""
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        kept = await create_order(session, user, total=700)
        order = await create_order(session, user, total=4_000)
    await delivered(db_sessions, CREATED, kept.id, order_created(kept))
    await delivered(db_sessions, CREATED, order.id, order_created(order))
    await delivered(db_sessions, CANCELLED, order.id, order_cancelled(order))
    await delivered(db_sessions, REFUNDED, order.id, payment_refunded(order, 4_000))
    row = await customer(db_sessions, user.id)
    started = (row.lifetime_value, row.orders_count, row.first_order_at, row.last_order_at)
    assert started[:2] == (700, 1)

    await delivered(db_sessions, BOUNCED, order.id, refund_failed(order, 4_000))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (4_700, 1)  # its money, not an order
    assert (row.first_order_at, row.last_order_at) == started[2:]

    await delivered(db_sessions, REFUNDED, order.id, payment_refunded(order, 4_000))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count, row.first_order_at, row.last_order_at) == started


async def test_a_partly_refunded_cancelled_orders_bounce_gives_back_only_what_bounced(
    db_sessions: SessionFactory,
) -> None:
    """A 500 refund, then the cancellation takes out the other 2,500: the 500 refund
    bouncing gives back 500, not what the cancellation took."""
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=3_000)
    for type, data in (
        (CREATED, order_created(order)),
        (REFUNDED, payment_refunded(order, 500)),
        (CANCELLED, order_cancelled(order)),
        (REFUNDED, payment_refunded(order, 2_500)),
        (BOUNCED, refund_failed(order, 500)),
    ):
        await delivered(db_sessions, type, order.id, data)
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (500, 0)


async def test_a_bounce_of_an_order_never_counted_enters_nothing(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=2_000)
    await delivered(db_sessions, CANCELLED, order.id, order_cancelled(order))
    await delivered(db_sessions, BOUNCED, order.id, refund_failed(order, 2_000))
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (0, 0)
    assert await _kinds(db_sessions, user.id) == [(LedgerKind.CANCELLATION, 0)]
