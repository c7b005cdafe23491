"""Orders paid through ``PaymentService`` and the real SDK against the Stripe sandbox,
without a workflow: what the payment tests of this folder build on."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.settings import Settings
from integrations.payments.stripe import StripeGateway
from models.orders import Order
from services.analytics import AnalyticsRecorder
from services.payments import PaymentService
from tests.events.customers import create_customer, create_order
from tests.orders.helpers import SANDBOX_KEY


async def order_of(engine: AsyncEngine, *, total: int, currency: str = "USD") -> Order:
    """A ``confirmed`` order of a new customer, committed, not yet paid."""
    async with transaction(create_session_factory(engine)) as session:
        return await create_order(
            session, await create_customer(session), total=total, currency=currency
        )


def payment_service(engine: AsyncEngine, live: Settings) -> PaymentService:
    return PaymentService(
        create_session_factory(engine),
        StripeGateway.from_settings(live),
        live,
        AnalyticsRecorder(False),
    )


async def at_stripe(base: str, path: str, **params: str) -> Any:
    """What the Stripe sandbox answers ``GET /v1/{path}`` (Stripe's own units)."""
    async with httpx.AsyncClient(base_url=base) as http:
        answer = await http.get(f"/_sandbox/stripe/v1/{path}", headers=SANDBOX_KEY, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()
