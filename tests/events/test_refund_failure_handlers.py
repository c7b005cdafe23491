"""``payment.refund_failed`` (a refund the card's bank sent back): staff get one alert
saying what to do (settle the return, or refund the order again) and the customer one
email saying why the money did not arrive and what happens next, however often the event
is delivered."""

from __future__ import annotations

from typing import Any

from core.db import SessionFactory, transaction
from core.events import EventType
from services.email import EmailService
from services.events.handlers.refund_failures import refund_failed_alert, refund_failed_email
from services.events.handling import handle_once
from tests.events.conftest import MailApi
from tests.events.customers import create_customer, create_order, published
from tests.factories import unique_email


async def _refund_failed(
    sessions: SessionFactory, *, reason: str, **extra: Any
) -> tuple[str, str, str]:
    """An order whose 12.50 refund failed; returns the order's id, email and event id."""
    async with transaction(sessions) as session:
        customer = await create_customer(session, name="Grace")
        order = await create_order(session, customer, total=4000)
    data = {
        "orderId": order.id,
        "refundId": "re_bounced",
        "amount": 1250,
        "currency": "USD",
        "reason": reason,
        "captured": 4000,
        "refundedTotal": 0,
        "remaining": 4000,
    }
    event_id = await published(sessions, EventType.PAYMENT_REFUND_FAILED, order.id, data | extra)
    return order.id, order.email, event_id


async def test_staff_get_one_alert_saying_to_refund_the_order_again(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    to = unique_email("payments-staff")
    settings = mail_api.settings.model_copy(update={"fulfillment_alert_email": to})
    alert = refund_failed_alert(emails, settings)
    order_id, _, event_id = await _refund_failed(db_sessions, reason="lost_or_stolen_card")
    assert await handle_once(db_sessions, alert, event_id) is True
    assert await handle_once(db_sessions, alert, event_id) is False
    [mail] = await mail_api.mailbox(to)
    assert mail["subject"] == (
        f"Refund re_bounced failed: 12.50 USD of order {order_id} to refund again"
    )
    assert "sent back by the card's bank: lost_or_stolen_card" in mail["text"]
    assert "What to do: refund the order again" in mail["text"]
    assert f"{settings.api_base_url}/api/admin/orders/{order_id}/refunds" in mail["text"]


async def test_a_returns_failed_refund_asks_staff_to_settle_the_return(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    to = unique_email("inventory")
    settings = mail_api.settings.model_copy(
        update={"fulfillment_alert_email": None, "inventory_alert_email": to}
    )
    alert = refund_failed_alert(emails, settings)
    _, _, event_id = await _refund_failed(
        db_sessions, reason="expired_or_canceled_card", returnId="ret_bounced"
    )
    assert await handle_once(db_sessions, alert, event_id) is True
    [mail] = await mail_api.mailbox(to)
    assert "(return ret_bounced)" in mail["text"]
    assert "the return is received again, with its refundError" in mail["text"]
    assert f"{settings.api_base_url}/api/admin/returns/ret_bounced/settle" in mail["text"]


async def test_the_customer_gets_one_email_saying_why_and_what_happens_next(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    email = refund_failed_email(emails, mail_api.settings)
    order_id, to, event_id = await _refund_failed(db_sessions, reason="expired_or_canceled_card")
    assert await handle_once(db_sessions, email, event_id) is True
    assert await handle_once(db_sessions, email, event_id) is False
    [mail] = await mail_api.mailbox(to)
    assert mail["subject"] == (f"Your refund of 12.50 USD for order {order_id} did not reach you")
    assert mail["text"].startswith("Hello Grace,")
    assert (
        f"The refund of 12.50 USD for your order {order_id} could not be completed: the card "
        "it was sent to has expired or was cancelled." in mail["text"]
    )
    assert "will refund it again" in mail["text"]
    assert "expired_or_canceled_card" not in mail["text"]  # Stripe's code is not for them


async def test_a_refund_never_counted_is_told_at_its_own_amount(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    """A staff refund of 12.50 whose answer was lost, then bounced: nothing comes off the
    payment's refunded amount (``amount`` 0: it was never counted), but the customer did
    not get 12.50 and is owed it; both emails said 0.00 USD."""
    to = unique_email("payments-staff")
    settings = mail_api.settings.model_copy(update={"fulfillment_alert_email": to})
    order_id, customer, event_id = await _refund_failed(
        db_sessions, reason="lost_or_stolen_card", amount=0, refundAmount=1250
    )
    assert await handle_once(db_sessions, refund_failed_alert(emails, settings), event_id)
    assert await handle_once(db_sessions, refund_failed_email(emails, settings), event_id)
    [staff] = await mail_api.mailbox(to)
    assert staff["subject"] == (
        f"Refund re_bounced failed: 12.50 USD of order {order_id} to refund again"
    )
    assert "12.50 USD did not reach the customer" in staff["text"]
    [mail] = await mail_api.mailbox(customer)
    assert mail["subject"] == f"Your refund of 12.50 USD for order {order_id} did not reach you"
    assert "0.00" not in mail["text"]
