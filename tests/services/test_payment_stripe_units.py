"""A payment in a currency whose Stripe ``amount`` is not its ISO minor units, through the
payment service, the real SDK and the Stripe sandbox over HTTP: Stripe is sent (and holds)
its own units, our rows and events keep ours. Carts are USD only today, so no such order
reaches the payment step through the API; the boundary is right all the same."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.errors import ValidationFailed
from core.events import EventType
from core.settings import Settings
from integrations.payments.gateway import IntentStatus
from integrations.payments.stripe_units import AmountNotRepresentable
from models.orders import Order
from models.quotes import Quote, QuoteLine
from services import payments
from services.order_checks import checkout_problem, refuse_unchargeable
from services.payments import PaymentRepository
from tests.fulfillment_rows import published
from tests.services.payment_rows import at_stripe, order_of, payment_service


async def test_an_isk_order_charges_and_refunds_stripe_in_its_units_and_reads_back_ours(
    engine: AsyncEngine, stripe_api: tuple[Settings, str]
) -> None:
    """4,200 ISK (ISO exponent 0: 4200 minor units) is 420000 to Stripe, which writes ISK
    with two decimals that are always 00; a 1,200 ISK refund is 120000. Before, Stripe was
    sent 4200 (42 ISK, a hundredth of the order) and its answers read as they came."""
    live, base = stripe_api
    order = await order_of(engine, total=4200, currency="ISK")
    sessions = create_session_factory(engine)
    service = payment_service(engine, live)
    gateway = service.gateway

    held = await service.authorize(order.id)
    assert held.status is IntentStatus.AUTHORIZED
    captured = await service.capture(order.id)
    assert (captured.amount, captured.amount_captured, captured.currency) == (4200, 4200, "ISK")
    intent = await at_stripe(base, f"payment_intents/{captured.intent_id}")
    assert (intent["amount"], intent["amount_received"], intent["currency"]) == (
        420000,
        420000,
        "isk",
    )

    async with transaction(sessions) as session:
        row = await session.get(Order, order.id)
        assert row is not None
        outcome = await payments.refund(
            session, gateway, row, amount=1200, reason="dented", staff_id=None
        )
    assert (outcome.amount, outcome.currency) == (1200, "ISK")
    assert (await gateway.retrieve(captured.intent_id)).amount_refunded == 1200
    assert await service.void_or_refund(order.id) == "refunded"  # the other 3,000 ISK
    listed = await at_stripe(base, "refunds", payment_intent=captured.intent_id)
    assert sorted(r["amount"] for r in listed["data"]) == [120000, 300000]
    assert sorted(r.amount for r in await gateway.refunds(captured.intent_id)) == [1200, 3000]

    async with sessions() as session:
        payment = await PaymentRepository(session).for_order(order.id)
        told = await published(session, order.id, EventType.PAYMENT_REFUNDED)
    assert payment is not None
    assert (payment.amount, payment.amount_captured, payment.amount_refunded) == (4200, 4200, 4200)
    assert [(e.data["amount"], e.data["currency"]) for e in told] == [(1200, "ISK"), (3000, "ISK")]


async def test_an_amount_stripe_cannot_take_exactly_is_refused_before_anything_is_held(
    engine: AsyncEngine, stripe_api: tuple[Settings, str]
) -> None:
    """1,500.50 ariary: MGA has two decimals in ISO 4217 and none at Stripe. Refused
    (``amount_not_representable``) before an intent is made, not charged as 1,500 or
    1,501 ariary; 1,500.00 is 1500 to Stripe."""
    live, base = stripe_api
    sessions = create_session_factory(engine)
    service = payment_service(engine, live)
    odd = await order_of(engine, total=150050, currency="MGA")
    with pytest.raises(AmountNotRepresentable) as refused:
        await service.authorize(odd.id)
    assert refused.value.extra["multipleOf"] == 100
    async with sessions() as session:
        assert await PaymentRepository(session).for_order(odd.id) is None

    whole = await order_of(engine, total=150000, currency="MGA")
    await service.authorize(whole.id)
    state = await service.capture(whole.id)
    assert (state.amount_captured, state.currency) == (150000, "MGA")
    intent = await at_stripe(base, f"payment_intents/{state.intent_id}")
    assert (intent["amount"], intent["amount_received"]) == (1500, 1500)
    # A staff refund of 10.50 ariary: refused (what the API answers 422), nothing refunded.
    async with transaction(sessions) as session:
        row = await session.get(Order, whole.id)
        assert row is not None
        with pytest.raises(AmountNotRepresentable):
            await payments.refund(
                session, service.gateway, row, amount=1050, reason="dented", staff_id=None
            )
    listed = await at_stripe(base, "refunds", payment_intent=state.intent_id)
    assert listed["data"] == []


def _quote(currency: str, total: int) -> Quote:
    line = QuoteLine(
        product_id="prod_units",
        name="Lopapeysa",
        slug="lopapeysa",
        sku=None,
        quantity=1,
        unit_price=total,
        effective_unit_price=total,
        line_discount=0,
        line_total=total,
    )
    return Quote(
        currency=currency,
        lines=[line],
        subtotal=total,
        automatic_discounts=0,
        coupon=None,
        shipping=0,
        tax=0,
        total=total,
    )


def test_validate_order_refuses_a_total_stripe_cannot_take() -> None:
    """The same rule at the edge of checkout: the order fails with a stable code before
    anything is held, and the cart shows it."""
    assert checkout_problem(_quote("MGA", 150050)) == "amount_not_representable"
    assert checkout_problem(_quote("KWD", 5124)) == "amount_not_representable"
    assert checkout_problem(_quote("MGA", 150000)) is None
    assert checkout_problem(_quote("HUF", 17545)) is None  # HUF charges take fillér
    # Stripe's eight digits are 999,999.00 ISK: 1,000,000 ISK is too large, though its ISO
    # minor units (1000000) are far below 99,999,999.
    with pytest.raises(ValidationFailed) as large:
        refuse_unchargeable(_quote("ISK", 1_000_000), None)
    assert (large.value.code, large.value.extra["limit"]) == ("order_total_too_large", 999_999)
    assert checkout_problem(_quote("ISK", 999_999)) is None
