"""Two returns of one order received at the same moment: each receipt fixes its refund
knowing what the other fixed (README, Returns: "once per order"). Each receipt locks only
its own return row; what serialises them is the order's payment row, taken before
anything already refunded is counted (the order's row when it has none).

Deterministic, no timing: another transaction holds the order's row (as an order step
does), so each receipt stops at the latest when it writes the order's timeline entry,
after deciding its refund. Both are seen waiting on a lock before that transaction
lets go; without the serialisation both had decided by then, neither seeing the other.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.settings import Settings
from integrations.payments.stripe import StripeGateway
from models.orders import Order, OrderLine
from models.payments import Payment, PaymentStatus
from models.returns import ReturnLine, ReturnReason, ReturnRequest, ReturnStatus
from services.order_repository import OrderRepository
from services.returns import ReturnRepository, ReturnSteps
from tests.events.customers import create_customer
from tests.fulfillment_rows import published
from tests.lock_waits import waiting_on_locks
from tests.returns.delivered import write_order
from workflows.types.returns import ReceivedLine

MUG, TEA, PLATE = "prod_race_mug", "prod_race_tea", "prod_race_plate"


async def _approved(sessions: SessionFactory, line: OrderLine, user_id: str) -> str:
    """An approved return of one unit of ``line``, the shop's fault (shipping owed)."""
    async with transaction(sessions) as session:
        request = ReturnRequest(
            order_id=line.order_id,
            user_id=user_id,
            status=ReturnStatus.APPROVED,
            reason=ReturnReason.DAMAGED,
        )
        await ReturnRepository(session).add(
            request,
            [
                ReturnLine(
                    return_id=request.id,
                    order_line_id=line.id,
                    product_id=line.product_id,
                    quantity=1,
                )
            ],
        )
        return request.id


async def _ordered(
    engine: AsyncEngine, sessions: SessionFactory
) -> tuple[str, Order, list[OrderLine]]:
    """A new customer's order of mug 20.00, tea 10.00, plate 10.00; tax 3.20; shipping
    5.99: 49.19. Returns the customer's id, the order and its three lines."""
    async with transaction(sessions) as session:
        user = await create_customer(session)
    order, lines = await write_order(
        engine,
        user.id,
        lines=[(MUG, 1, 2000), (TEA, 1, 1000), (PLATE, 1, 1000)],
        shipping=599,
        tax=320,
    )
    return user.id, order, lines


async def _paid(
    sessions: SessionFactory, order: Order, status: PaymentStatus, *, refunded: int = 0
) -> None:
    """The order's Stripe payment row: its total captured, ``refunded`` of it refunded."""
    async with transaction(sessions) as session:
        session.add(
            Payment(
                order_id=order.id,
                provider="stripe",
                amount=order.total,
                currency=order.currency,
                status=status,
                amount_captured=order.total,
                amount_refunded=refunded,
            )
        )


async def _received_at_once(
    engine: AsyncEngine, settings: Settings, *, paid: bool
) -> tuple[list[int | None], list[int]]:
    """Mug 20.00, tea 10.00, plate 10.00; tax 3.20; shipping 5.99: 49.19, captured when
    ``paid`` (else no payment row). The mug and the tea come back damaged (the shop's
    fault) in two returns received at once while another transaction holds the order's
    row. Returns the receipts' refunds and the ``return.received`` shipping amounts."""
    sessions = create_session_factory(engine)
    user_id, order, (mug, tea, _plate) = await _ordered(engine, sessions)
    if paid:
        await _paid(sessions, order, PaymentStatus.CAPTURED)
    returns = [await _approved(sessions, ln, user_id) for ln in (mug, tea)]
    lines: dict[str, str] = {}
    async with sessions() as session:
        for line in await ReturnRepository(session).lines(returns):
            lines[line.return_id] = line.id
    steps = ReturnSteps(sessions, StripeGateway.from_settings(settings))

    async with transaction(sessions) as holder:
        await OrderRepository(holder).require(order.id, lock=True)
        receipts = [
            asyncio.ensure_future(
                steps.receive(
                    return_id,
                    [
                        ReceivedLine(
                            return_line_id=lines[return_id], received_quantity=0, damaged_quantity=1
                        )
                    ],
                    staff_id=None,
                )
            )
            for return_id in returns
        ]
        await waiting_on_locks(engine, 2)
    amounts = await asyncio.gather(*receipts)

    async with sessions() as session:
        received = await published(session, order.id, EventType.RETURN_RECEIVED)
        rows = (
            await session.exec(select(ReturnRequest).where(col(ReturnRequest.id).in_(returns)))
        ).all()
    assert sorted(r.refund_amount or 0 for r in rows) == sorted(a or 0 for a in amounts)
    return amounts, sorted(e.data["refund"]["shipping"] for e in received)


async def test_two_receipts_at_once_refund_the_shipping_once_and_no_more_than_the_rule(
    engine: AsyncEngine, settings: Settings
) -> None:
    # The rule refunds goods 30.00, tax 3.20 x 30/40 = 2.40 and the shipping once: 38.39,
    # whichever first.
    amounts, shipping = await _received_at_once(engine, settings, paid=True)
    assert sum(a or 0 for a in amounts) == 3000 + 240 + 599
    assert shipping == [0, 599]


async def test_two_receipts_of_an_order_without_a_payment_row_owe_the_shipping_once(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Nothing captured, nothing to refund, but the breakdown still says what is owed:
    with no payment row to lock, the receipts were not serialised and both listed the
    shipping. The order's row serialises them instead."""
    amounts, shipping = await _received_at_once(engine, settings, paid=False)
    assert amounts == [0, 0]
    assert shipping == [0, 599]


async def test_a_receipt_counts_an_earlier_return_s_refund_still_owed(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Staff refunded 30.00 of 49.19 (19.19 left). The mug's return is received: 27.59 is
    owed (goods 20.00, tax 1.60, shipping 5.99), capped at the 19.19 left; its refund is
    not made yet (Stripe down, the step retrying) when the tea's return is received. The
    tea's refund is capped by what is left *after* the mug's owed refund: nothing. Capped
    by the payment row alone (10.80), the two owed 29.99 of 19.19: one of them was then
    refused by Stripe and failed for staff to settle."""
    sessions = create_session_factory(engine)
    user_id, order, (mug, tea, _plate) = await _ordered(engine, sessions)
    await _paid(sessions, order, PaymentStatus.PARTIALLY_REFUNDED, refunded=3000)
    first, second = [await _approved(sessions, ln, user_id) for ln in (mug, tea)]
    async with sessions() as session:
        lines = {
            ln.return_id: ln.id for ln in await ReturnRepository(session).lines([first, second])
        }
    steps = ReturnSteps(sessions, StripeGateway.from_settings(settings))

    def damaged(return_id: str) -> list[ReceivedLine]:
        return [
            ReceivedLine(return_line_id=lines[return_id], received_quantity=0, damaged_quantity=1)
        ]

    assert await steps.receive(first, damaged(first), staff_id=None) == 4919 - 3000
    assert await steps.receive(second, damaged(second), staff_id=None) == 0
