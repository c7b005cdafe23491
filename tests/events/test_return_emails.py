"""The return emails: one per step the customer hears of (the label link at approval, the
reason of a decline, what arrived, the refund, a cancellation), staff's alert of a
request to decide, and no second refund email from ``payment.refunded``."""

from __future__ import annotations

from typing import Any

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.orders import Order, OrderLine
from models.returns import ReturnReason, ReturnRequest, ReturnStatus
from services.email import EmailService
from services.events.handlers import refund_email, return_emails, return_request_alert
from services.events.handling import handle_once
from tests.events.conftest import MailApi
from tests.events.customers import create_customer, create_order


async def _order(sessions: SessionFactory) -> Order:
    async with transaction(sessions) as session:
        user = await create_customer(session, name="Ada")
        order = await create_order(session, user, total=4849)
        session.add(
            OrderLine(
                order_id=order.id,
                product_id="prod_mug",
                name="Blue Mug",
                quantity=2,
                list_price=1500,
                unit_price=1500,
                line_total=3000,
            )
        )
    return order


async def _event(
    sessions: SessionFactory, type: EventType, order: Order, data: dict[str, Any]
) -> str:
    async with transaction(sessions) as session:
        base = {"returnId": "ret_mail", "orderId": order.id, "userId": order.user_id}
        return (await publish(session, type, order.id, base | data)).id


async def test_the_customer_hears_of_each_step_once(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    order = await _order(db_sessions)
    subscriber = return_emails(emails, mail_api.settings)
    steps: list[tuple[EventType, dict[str, Any]]] = [
        (
            EventType.RETURN_APPROVED,
            {
                "labelUrl": "https://labels.example/lbl_1.pdf",
                "trackingUrl": "https://track.example/1",
                "shipBy": "2026-12-17T10:00:00+00:00",
            },
        ),
        (
            EventType.RETURN_RECEIVED,
            {
                "refundAmount": 3786,
                "lines": [{"productId": "prod_mug", "received": 1, "damaged": 1}],
            },
        ),
        (EventType.RETURN_REFUNDED, {"amount": 3786, "currency": "USD"}),
    ]
    for type, data in steps:
        event_id = await _event(db_sessions, type, order, data)
        assert await handle_once(db_sessions, subscriber, event_id) is True
        assert await handle_once(db_sessions, subscriber, event_id) is False

    approved, received, refunded = await mail_api.mailbox(order.email)
    assert approved["subject"] == (
        f"Your return for order {order.id} is approved: here is your label"
    )
    assert "https://labels.example/lbl_1.pdf" in approved["text"]
    assert "December 17, 2026" in approved["text"]
    assert "Blue Mug: 1 in good condition, 1 damaged" in received["text"]
    assert "37.86 USD" in received["text"]
    assert refunded["subject"] == "Refund of 37.86 USD for your return ret_mail"

    # The return's refund also published payment.refunded: refund_email leaves it alone.
    paid_back = await _event(
        db_sessions,
        EventType.PAYMENT_REFUNDED,
        order,
        {
            "amount": 3786,
            "currency": "USD",
            "captured": 4849,
            "refundedTotal": 3786,
            "remaining": 1063,
        },
    )
    assert await handle_once(db_sessions, refund_email(emails, mail_api.settings), paid_back)
    assert len(await mail_api.mailbox(order.email)) == 3


async def test_a_return_settled_by_staff_says_its_refund_unless_it_is_none(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    order = await _order(db_sessions)
    subscriber = return_emails(emails, mail_api.settings)
    settled = {"currency": "USD", "settled": True, "owed": 2125, "note": "by phone"}
    nothing = await _event(db_sessions, EventType.RETURN_REFUNDED, order, settled | {"amount": 0})
    rest = await _event(db_sessions, EventType.RETURN_REFUNDED, order, settled | {"amount": 787})
    assert await handle_once(db_sessions, subscriber, nothing)
    assert await handle_once(db_sessions, subscriber, rest)
    [mail] = await mail_api.mailbox(order.email)
    assert mail["subject"] == "Refund of 7.87 USD for your return ret_mail"


async def test_a_return_that_refunds_nothing_says_no_refund_is_due(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    """The return of a free order (a 100 % coupon) refunds nothing: its receipt says no
    refund is due, and why, and its closing sends no "refund of 0.00" (both said a refund
    of 0.00 USD). A return of an order refunded already says that instead."""
    order = await _order(db_sessions)
    subscriber = return_emails(emails, mail_api.settings)
    lines = [{"productId": "prod_mug", "received": 1, "damaged": 0}]
    free = {"goods": 0, "tax": 0, "shipping": 0, "capped": False}
    steps: list[tuple[EventType, dict[str, Any]]] = [
        (EventType.RETURN_RECEIVED, {"refundAmount": 0, "refund": free, "lines": lines}),
        (EventType.RETURN_REFUNDED, {"amount": 0, "currency": "USD", "refundId": None}),
        (
            EventType.RETURN_RECEIVED,
            {"refundAmount": 0, "refund": free | {"goods": 1500, "capped": True}, "lines": lines},
        ),
    ]
    for type, data in steps:
        event_id = await _event(db_sessions, type, order, data)
        assert await handle_once(db_sessions, subscriber, event_id) is True
    free_return, refunded_already = await mail_api.mailbox(order.email)
    for mail in (free_return, refunded_already):
        assert mail["subject"] == f"We received your return for order {order.id}"
        assert "0.00" not in mail["text"]
        assert "0.00" not in mail["html"]
    assert (
        "No refund is due for this return: what you returned cost nothing." in free_return["text"]
    )
    assert (
        "No refund is due for this return: what you returned cost nothing." in (free_return["html"])
    )
    assert (
        "No refund is due for this return: everything paid for the order has been refunded "
        "already." in refunded_already["text"]
    )


async def test_a_decline_and_a_cancellation_say_why(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    order = await _order(db_sessions)
    subscriber = return_emails(emails, mail_api.settings)
    declined = await _event(
        db_sessions, EventType.RETURN_DECLINED, order, {"reason": "worn, not returnable"}
    )
    cancelled = await _event(
        db_sessions, EventType.RETURN_CANCELLED, order, {"shipBy": "2026-12-17T10:00:00+00:00"}
    )
    assert await handle_once(db_sessions, subscriber, declined)
    assert await handle_once(db_sessions, subscriber, cancelled)
    first, second = await mail_api.mailbox(order.email)
    assert "Reason: worn, not returnable" in first["text"]
    assert second["subject"] == f"Your return for order {order.id} was cancelled"
    assert "Nothing was refunded" in second["text"]


async def test_an_approval_handled_after_the_cancellation_sends_no_label(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    """The approval's delivery failed (a dead letter does not hold back its order's later
    events), the return was cancelled and the customer told; an operator replays the
    approval: no "here is your label" with a void label after "cancelled"."""
    order = await _order(db_sessions)
    subscriber = return_emails(emails, mail_api.settings)
    async with transaction(db_sessions) as session:
        request = ReturnRequest(
            order_id=order.id,
            user_id=order.user_id,
            status=ReturnStatus.CANCELLED,
            reason=ReturnReason.NO_LONGER_NEEDED,
        )
        session.add(request)
    data = {"returnId": request.id, "shipBy": "2026-12-17T10:00:00+00:00"}
    cancelled = await _event(db_sessions, EventType.RETURN_CANCELLED, order, data)
    approved = await _event(
        db_sessions,
        EventType.RETURN_APPROVED,
        order,
        data | {"labelUrl": "https://labels.example/void.pdf", "trackingUrl": None},
    )
    assert await handle_once(db_sessions, subscriber, cancelled)
    assert await handle_once(db_sessions, subscriber, approved)  # handled: nothing to send
    subjects = [m["subject"] for m in await mail_api.mailbox(order.email)]
    assert subjects == [f"Your return for order {order.id} was cancelled"]


async def test_staff_hear_of_requests_to_decide_only(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    order = await _order(db_sessions)
    staff = f"returns-{order.id.lower()}@shop.example"
    settings = mail_api.settings.model_copy(update={"fulfillment_alert_email": staff})
    alert = return_request_alert(emails, settings)
    lines = [{"returnLineId": "rline_1", "orderLineId": "oline_1", "quantity": 2}]
    to_decide = await _event(
        db_sessions,
        EventType.RETURN_REQUESTED,
        order,
        {"reason": "other", "autoApprove": False, "lines": lines},
    )
    automatic = await _event(
        db_sessions,
        EventType.RETURN_REQUESTED,
        order,
        {"reason": "damaged", "autoApprove": True, "lines": lines},
    )
    assert await handle_once(db_sessions, alert, to_decide)
    assert await handle_once(db_sessions, alert, automatic)
    [mail] = await mail_api.mailbox(staff)
    assert mail["subject"] == "Return ret_mail awaits a decision (other)"
    assert "2 unit(s)" in mail["text"]
