"""The rows of one order are locked in one order (``core.db.locked``): the payment row,
then the order row. Two transactions taking them in opposite orders deadlock."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from integrations.payments.gateway import IntentStatus
from integrations.payments.stripe import StripeGateway
from services.analytics import AnalyticsRecorder
from services.payments import PaymentService
from services.payments.repository import PaymentRepository
from tests.live import LiveStack
from tests.lock_waits import waiting_on_locks
from tests.orders.helpers import place, product, shopper_with_cart, wait_for


async def test_a_webhook_refresh_and_a_late_authorise_attempt_take_the_payment_row_first(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """An order waiting for 3-D Secure: the webhook's refresh records the intent's state
    (payment row, then the order's, to move it) while a late authorise attempt opens the
    payment. The attempt took the order's row first, then waited for the payment row the
    refresh held, which waited for the order's row: PostgreSQL aborted one of them."""
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    await wait_for(http, shopper.headers, placed["id"], {"requires_action"})
    sessions = create_session_factory(engine)
    service = PaymentService(
        sessions,
        StripeGateway.from_settings(live.settings),
        live.settings,
        AnalyticsRecorder(enabled=False),
    )
    payment_locks = "%FROM payments%FOR UPDATE%"
    # A third transaction holds the payment row, so that the refresh waits for it first
    # and the attempt second; let go, the refresh goes first.
    async with transaction(sessions) as holder:
        await PaymentRepository(holder).for_order(placed["id"], lock=True)
        refreshing = asyncio.ensure_future(service.refresh(placed["id"]))
        await waiting_on_locks(engine, 1, query_like=payment_locks)
        authorising = asyncio.ensure_future(service.authorize(placed["id"]))
        await waiting_on_locks(engine, 2, query_like=payment_locks)
    refreshed, authorised = await asyncio.gather(refreshing, authorising)
    assert refreshed.status is IntentStatus.REQUIRES_ACTION
    assert authorised.status is IntentStatus.REQUIRES_ACTION
    order = await http.get(f"/api/orders/{placed['id']}", headers=shopper.headers)
    assert order.json()["status"] == "requires_action"
