from __future__ import annotations

import pytest
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import create_session_factory, transaction
from core.events import EventType
from core.ids import IdPrefix, is_valid_id
from core.outbox import publish
from core.telemetry import incoming_context, unrecorded_span
from models.outbox import OutboxEvent


async def test_publish_writes_an_undelivered_event_in_the_callers_transaction(
    db_session: AsyncSession,
) -> None:
    event = await publish(db_session, EventType.ORDER_CREATED, "ord_1", {"total": 9999})
    assert is_valid_id(event.id, IdPrefix.EVENT)
    row = (await db_session.exec(select(OutboxEvent).where(OutboxEvent.id == event.id))).one()
    assert row.type == "order.created"
    assert row.aggregate_id == "ord_1"
    assert row.data == {"total": 9999}
    assert row.delivered_at is None
    assert row.attempts == 0
    assert row.seq is not None
    assert row.created_at.tzinfo is not None
    assert row.traceparent is None  # written outside any trace


async def test_an_event_keeps_the_trace_it_was_written_in(db_session: AsyncSession) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = incoming_context(f"00-{trace_id}-00f067aa0ba902b7-01".encode(), None)
    span = unrecorded_span(parent)
    with trace.use_span(span):
        event = await publish(db_session, EventType.ORDER_CREATED, "ord_traced", {})
    span_id = format(span.get_span_context().span_id, "016x")
    row = (await db_session.exec(select(OutboxEvent).where(OutboxEvent.id == event.id))).one()
    assert row.traceparent == f"00-{trace_id}-{span_id}-01"


async def test_events_get_increasing_sequence_numbers(db_session: AsyncSession) -> None:
    first = await publish(db_session, EventType.ORDER_CREATED, "ord_2", {})
    second = await publish(db_session, EventType.ORDER_CANCELLED, "ord_2", {})
    assert first.seq is not None
    assert second.seq is not None
    assert second.seq > first.seq


async def test_a_rolled_back_change_takes_its_event_with_it(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)

    async def failing_change() -> None:
        async with transaction(sessions) as session:
            await publish(session, EventType.ORDER_CREATED, "ord_rolled_back", {"n": 1})
            raise RuntimeError("business step failed")

    with pytest.raises(RuntimeError, match="business step failed"):
        await failing_change()
    async with sessions() as session:
        found = await session.exec(
            select(OutboxEvent).where(col(OutboxEvent.aggregate_id) == "ord_rolled_back")
        )
        assert found.all() == []


async def test_a_committed_change_keeps_its_event(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    async with transaction(sessions) as session:
        event = await publish(session, EventType.USER_CREATED, "user_committed", {"email": "a@b.c"})
    async with sessions() as session:
        row = await session.get(OutboxEvent, event.id)
        assert row is not None
        assert row.data == {"email": "a@b.c"}
        await session.delete(row)
        await session.commit()


@pytest.mark.parametrize("bad_type", ["", "created", "order.shipped_by_owl"])
async def test_only_catalogued_event_types_are_published(
    db_session: AsyncSession, bad_type: str
) -> None:
    with pytest.raises(ValueError, match="event catalogue"):
        await publish(db_session, bad_type, "ord_1", {})  # type: ignore[arg-type]


async def test_payment_events_belong_to_their_order(db_session: AsyncSession) -> None:
    event = await publish(db_session, EventType.PAYMENT_REFUNDED, "ord_9", {"amount": 1})
    assert (event.aggregate_type, event.aggregate_id) == ("order", "ord_9")
