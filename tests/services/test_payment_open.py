"""The authorisation's first step opens the order's payment row once, and records its
``authorization_requested`` event with the id the INSERT returned."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import create_session_factory
from core.settings import Settings
from integrations.payments.stripe import StripeGateway
from models.payments import Payment, PaymentEvent
from services.analytics import AnalyticsRecorder
from services.payments import PaymentService
from tests.api.test_order_long_poll import placed_order
from tests.factories import signed_up


async def test_opening_the_payment_reads_back_nothing_it_just_inserted(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    user, _ = await signed_up(client)
    order_id = await placed_order(engine, user)
    sessions = create_session_factory(engine)
    service = PaymentService(
        sessions, StripeGateway.from_settings(settings), settings, AnalyticsRecorder(False)
    )
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await service._open(order_id, "pi_first") == "pi_first"
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    # The payment row is read once, locked, before it exists; not again after the INSERT.
    reads = [s for s in statements if s.startswith("SELECT") and "FROM payments" in s]
    assert len(reads) == 1, reads
    assert reads[0].endswith("FOR UPDATE"), reads

    # A repeat finds the row (and the intent it recorded); one event, of that row.
    assert await service._open(order_id, "pi_second") == "pi_first"
    async with sessions() as session:
        payment = (await session.exec(select(Payment).where(Payment.order_id == order_id))).one()
        events = (
            await session.exec(select(PaymentEvent).where(PaymentEvent.payment_id == payment.id))
        ).all()
    assert [e.type for e in events] == ["authorization_requested"]
