"""An order's move is one statement: its row and its timeline entry together, nothing
left for the ORM to flush; a step that needs only the fence does not load the order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from models.analytics import AnalyticsEvent
from models.base import utcnow
from models.orders import Order, OrderEvent, OrderLine, OrderStatus
from services.analytics import AnalyticsRecorder
from services.order_repository import OrderNotFound
from services.order_transitions import OrderUndone
from services.orders import OrderService
from tests.fulfillment.factories import queued_order


async def _order(session: AsyncSession, status: OrderStatus) -> Order:
    order, _ = await queued_order(session, (1,))
    order.status = status
    await session.flush()
    return order


@contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _timeline(session: AsyncSession, order_id: str) -> list[OrderEvent]:
    rows = await session.exec(
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id)
        .order_by(col(OrderEvent.created_at))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def _fresh(session: AsyncSession, order_id: str) -> Order:
    row = await session.exec(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )
    return row.one()


async def test_a_move_writes_the_row_and_its_timeline_entry_in_one_statement(
    db_session: AsyncSession, engine: AsyncEngine, settings: Settings
) -> None:
    order = await _order(db_session, OrderStatus.PAYMENT_AUTHORIZED)
    order.next_action_url = None
    orders = OrderService(db_session, settings, AnalyticsRecorder(enabled=False))
    with _statements(engine) as seen:
        moved = await orders.transition(order, OrderStatus.CONFIRMED, "order confirmed")
    assert moved
    assert len(seen) == 1, seen  # not an UPDATE flushed and an INSERT
    assert order.status == OrderStatus.CONFIRMED
    assert order not in db_session.dirty  # the object says what the row says
    with _statements(engine) as seen:
        await db_session.flush()
    assert seen == []
    row = await _fresh(db_session, order.id)
    assert (row.status, row.updated_at) == (OrderStatus.CONFIRMED, order.updated_at)
    [entry] = await _timeline(db_session, order.id)
    assert (entry.status, entry.message, entry.data) == (
        OrderStatus.CONFIRMED,
        "order confirmed",
        {},
    )
    assert entry.created_at == order.updated_at


async def test_requires_action_keeps_its_url_and_the_next_move_clears_it(
    db_session: AsyncSession, settings: Settings
) -> None:
    order = await _order(db_session, OrderStatus.RESERVED)
    orders = OrderService(db_session, settings, AnalyticsRecorder(enabled=False))
    order.next_action_url = "http://sandbox/3ds/pi_1"
    assert await orders.transition(
        order, OrderStatus.REQUIRES_ACTION, "customer action required", data={"intentId": "pi_1"}
    )
    row = await _fresh(db_session, order.id)
    assert (row.status, row.next_action_url) == (
        OrderStatus.REQUIRES_ACTION,
        "http://sandbox/3ds/pi_1",
    )
    assert await orders.transition(
        row,
        OrderStatus.FAILED,
        "order failed",
        data={"failureCode": "payment_declined"},
        failure_code="payment_declined",
        failure_detail="3-D Secure failed",
    )
    row = await _fresh(db_session, order.id)
    assert (row.status, row.next_action_url, row.failure_code, row.failure_detail) == (
        OrderStatus.FAILED,
        None,
        "payment_declined",
        "3-D Secure failed",
    )
    entries = await _timeline(db_session, order.id)
    assert [(e.status, e.data) for e in entries] == [
        (OrderStatus.REQUIRES_ACTION, {"intentId": "pi_1"}),
        (OrderStatus.FAILED, {"failureCode": "payment_declined"}),
    ]
    # a move backwards (or to where it is) changes nothing and writes nothing
    assert not await orders.transition(row, OrderStatus.CONFIRMED, "late")
    assert len(await _timeline(db_session, order.id)) == 2


async def test_the_fence_stops_a_step_of_an_order_being_undone(
    db_session: AsyncSession, settings: Settings
) -> None:
    order = await _order(db_session, OrderStatus.CONFIRMED)
    orders = OrderService(db_session, settings, AnalyticsRecorder(enabled=False))
    await orders.fence(order.id)  # not undone: passes
    order.undoing_at = utcnow()
    await db_session.flush()
    with pytest.raises(OrderUndone):
        await orders.fence(order.id)
    with pytest.raises(OrderNotFound):
        await orders.fence("ord_missing")


async def test_queue_fulfillment_records_order_complete_with_the_seeds_order_figures(
    db_session: AsyncSession, settings: Settings
) -> None:
    """The seed's createOrder tracks ``orderId``, ``total`` and ``itemCount`` (as
    ``order_created``); the shop records them on ``order_complete``, the funnel's last
    step, once: the item count is the units of every line."""
    order = await _order(db_session, OrderStatus.CONFIRMED)  # lines of 1 unit
    db_session.add(
        OrderLine(
            order_id=order.id,
            product_id="prod_second_line",
            name="Second",
            quantity=3,
            list_price=500,
            unit_price=500,
            line_total=1500,
        )
    )
    await db_session.flush()
    orders = OrderService(db_session, settings, AnalyticsRecorder(enabled=True))
    await orders.queue_fulfillment(order.id)
    await orders.queue_fulfillment(order.id)  # a retried step records nothing twice
    rows = await db_session.exec(
        select(AnalyticsEvent).where(col(AnalyticsEvent.properties)["orderId"].astext == order.id)
    )
    [event] = rows.all()
    assert (event.event, event.user_id) == ("order_complete", order.user_id)
    assert event.properties == {
        "orderId": order.id,
        "total": order.total,
        "currency": order.currency,
        "itemCount": 4,
    }
