"""``payment.failed``: one email to the customer saying what failed and how to try
again, and a counter that counts each failed payment once."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
from redis.asyncio import Redis
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.settings import Settings
from core.shared_metrics import SharedCounters
from models.carts import Cart, CartStatus
from models.orders import Order, OrderStatus
from models.outbox import OutboxEvent
from models.users import Role, User, UserStatus
from services.analytics import AnalyticsRecorder
from services.email import EmailService
from services.events.handlers import payment_failed_email, payment_failure_metrics
from services.events.handlers.payments import PAYMENT_FAILURES_COUNTER
from services.events.handling import handle_once
from services.events.subscribers import DomainEvent, Subscriber
from services.orders import OrderService
from tests.events.conftest import MailApi
from tests.factories import unique_email

ADDRESS = {"street": "1 Main St", "city": "Boston", "state": "MA", "zip": "02101", "country": "US"}


class CommitLost(RuntimeError):
    pass


async def _failed_order(
    sessions: SessionFactory,
    settings: Settings,
    code: str,
    data: dict[str, Any],
    cart: CartStatus = CartStatus.ACTIVE,
) -> tuple[Order, str]:
    """An order failed by the workflow's ``close`` step (which publishes the event)."""
    async with transaction(sessions) as session:
        user = User(
            email=unique_email("payer"),
            name="Ada",
            password_hash="x",
            role=Role.CUSTOMER,
            status=UserStatus.ACTIVE,
        )
        session.add(user)
        await session.flush()
        basket = Cart(user_id=user.id, token_hash=uuid4().hex, status=cart)
        session.add(basket)
        await session.flush()
        order = Order(
            user_id=user.id,
            cart_id=basket.id,
            email=user.email,
            status=OrderStatus.RESERVED,
            currency="USD",
            total=4_250,
            shipping_address=ADDRESS,
            payment_method_type="card",
            payment_token="pm_card_visa",
        )
        session.add(order)
        await session.flush()
        orders = OrderService(session, settings, AnalyticsRecorder(False))
        assert await orders.close(order.id, OrderStatus.FAILED, code, "the payment failed", data)
    return order, await _payment_failed_event(sessions, order.id)


async def _payment_failed_event(sessions: SessionFactory, order_id: str) -> str:
    async with sessions() as session:
        rows = await session.exec(
            select(OutboxEvent.id).where(
                OutboxEvent.aggregate_id == order_id, OutboxEvent.type == "payment.failed"
            )
        )
        [event_id] = rows.all()
        return event_id


@pytest.mark.parametrize(
    ("code", "data", "what_failed", "how_to_retry"),
    [
        (
            "payment_declined",
            {"reason": "insufficient_funds", "intentId": "pi_1"},
            "Your card was declined because of insufficient funds.",
            "make sure the card has enough funds",
        ),
        (
            "payment_declined",
            {"reason": "expired_card"},
            "Your card has expired.",
            "Use a card that is still valid",
        ),
        (
            "payment_declined",
            {"reason": "generic_decline"},
            "Your bank declined the payment.",
            "Use another card, or ask your bank why it declined",
        ),
        (
            "payment_declined",
            {"reason": "stolen_card"},  # never said to the customer in those words
            "Your bank declined the payment.",
            "Use another card",
        ),
        (
            "payment_action_timeout",
            {},
            "The 3-D Secure check (your bank's confirmation step) was not completed in time.",
            "complete the 3-D Secure step when your bank asks for it",
        ),
        (
            "invalid_payment_method",
            {},
            "The payment method could not be used for this order.",
            "Check out again with another card.",
        ),
        (
            "payment_unavailable",
            {},
            "Our payment provider could not be reached, so no payment was taken.",
            "This was not a problem with your card",
        ),
        (
            "payment_error",
            {},
            "Our payment provider could not process the payment.",
            "check out again in a few minutes",
        ),
    ],
)
async def test_the_customer_gets_one_email_saying_what_failed_and_how_to_retry(
    db_sessions: SessionFactory,
    emails: EmailService,
    mail_api: MailApi,
    code: str,
    data: dict[str, Any],
    what_failed: str,
    how_to_retry: str,
) -> None:
    settings = mail_api.settings
    subscriber = payment_failed_email(emails, settings)
    order, event_id = await _failed_order(db_sessions, settings, code, data)

    assert await handle_once(db_sessions, subscriber, event_id) is True
    assert await handle_once(db_sessions, subscriber, event_id) is False  # delivered twice

    [mail] = await mail_api.mailbox(order.email)
    assert mail["subject"] == f"Your payment for order {order.id} did not go through"
    text = " ".join(mail["text"].split())
    assert f"What failed: {what_failed}" in text
    assert how_to_retry in text
    assert f"({42.50:.2f} USD)" in text
    assert f"Your cart is still there, with everything in it: {settings.api_base_url}/api/cart" in (
        text
    )
    assert "could not complete" not in mail["subject"]  # not the workflow's order_failed
    assert what_failed.split(" (")[0] in mail["html"].replace("&#39;", "'")


async def test_a_cart_that_was_not_reopened_is_not_promised(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    settings = mail_api.settings
    order, event_id = await _failed_order(
        db_sessions, settings, "payment_declined", {}, cart=CartStatus.CHECKED_OUT
    )
    assert await handle_once(db_sessions, payment_failed_email(emails, settings), event_id)
    [mail] = await mail_api.mailbox(order.email)
    assert "Your cart is still there" not in mail["text"]
    assert f"{settings.api_base_url}/api/orders/{order.id}" in mail["text"]


async def test_failed_payments_are_counted_once_per_event_even_if_a_commit_is_lost(
    db_sessions: SessionFactory, settings: Settings, redis: Redis, client: httpx.AsyncClient
) -> None:
    counters = SharedCounters(redis)
    key = (PAYMENT_FAILURES_COUNTER, (("code", "payment_declined"),))
    before = (await counters.read()).get(key, 0)
    metrics = payment_failure_metrics(redis)
    _, first = await _failed_order(db_sessions, settings, "payment_declined", {})
    _, second = await _failed_order(db_sessions, settings, "payment_declined", {})

    async def count_then_lose_the_commit(event: DomainEvent, session: AsyncSession) -> None:
        await metrics.handle(event, session)
        raise CommitLost("the transaction failed after the count")

    losing = Subscriber(metrics.name, metrics.event_types, count_then_lose_the_commit)
    with pytest.raises(CommitLost):
        await handle_once(db_sessions, losing, first)
    assert await handle_once(db_sessions, metrics, first) is True  # redelivered
    assert await handle_once(db_sessions, metrics, first) is False
    assert await handle_once(db_sessions, metrics, second) is True
    assert (await counters.read())[key] == before + 2
    exposition = (await client.get("/metrics")).text
    assert f'shop_payment_failures_total{{code="payment_declined"}} {before + 2}.0' in exposition
