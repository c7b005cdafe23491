"""The ``notifications`` subscriber: which events write what for the order's customer,
and which write nothing (a return's own refund, a closed account)."""

from __future__ import annotations

from sqlmodel import col, select

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.notifications import Notification
from models.orders import OrderStatus
from models.users import User, UserStatus
from services.events.handlers.notifications import notifications_subscriber
from services.events.handling import handle_once
from tests.events.customers import create_customer, create_order, order_cancelled, order_created
from tests.fulfillment_rows import order_in_parcels


async def _notifications(sessions: SessionFactory, user_id: str) -> list[Notification]:
    async with sessions() as session:
        rows = await session.exec(
            select(Notification)
            .where(col(Notification.user_id) == user_id)
            .order_by(col(Notification.id))
        )
        return list(rows.all())


async def test_parcels_refunds_and_returns_notify_the_customer(
    db_sessions: SessionFactory,
) -> None:
    subscriber = notifications_subscriber()
    async with transaction(db_sessions) as session:
        made = await order_in_parcels(session)
        order = made.order
        [shipment] = made.shipments
        base = {"orderId": order.id, "currency": "USD"}
        events = [
            await publish(
                session,
                EventType.SHIPMENT_SHIPPED,
                order.id,
                base
                | {
                    "shipmentId": shipment.id,
                    "carrier": "USPS",
                    "service": "Priority",
                    "trackingCode": "9400123",
                    "trackingUrl": "https://tools.usps.com/t/9400123",
                },
            ),
            # A return's refund is told by return.refunded, not twice.
            await publish(
                session,
                EventType.PAYMENT_REFUNDED,
                order.id,
                base | {"amount": 1250, "returnId": "ret_1"},
            ),
            await publish(
                session,
                EventType.RETURN_REFUNDED,
                order.id,
                base | {"amount": 1250, "returnId": "ret_1", "refundId": "re_1"},
            ),
            await publish(session, EventType.PAYMENT_REFUNDED, order.id, base | {"amount": 500}),
        ]
    for event in events:
        assert await handle_once(db_sessions, subscriber, event.id) is True
        assert await handle_once(db_sessions, subscriber, event.id) is False

    rows = await _notifications(db_sessions, order.user_id)
    assert [(r.kind, r.title, r.body) for r in rows] == [
        (
            "shipment_shipped",
            "Your parcel is on its way",
            f"A parcel from order {order.id} has shipped with USPS Priority. "
            "Tracking number: 9400123.",
        ),
        (
            "return_refunded",
            "Return ret_1 refunded",
            f"We refunded 12.50 USD for your return from order {order.id}.",
        ),
        (
            "payment_refunded",
            f"Refund of 5.00 USD for order {order.id}",
            "The refund is on its way back to your card; it can take a few days to show on "
            "your statement.",
        ),
    ]
    assert rows[0].data == {
        "orderId": order.id,
        "shipmentId": shipment.id,
        "trackingCode": "9400123",
        "trackingUrl": "https://tools.usps.com/t/9400123",
    }
    assert rows[1].data == {"orderId": order.id, "returnId": "ret_1", "refundId": "re_1"}
    assert [r.event_id for r in rows] == [events[0].id, events[2].id, events[3].id]
    # Ids increase in the order they were written (what a resuming stream relies on).
    assert [r.id for r in rows] == sorted(r.id for r in rows)


async def test_a_closed_account_is_not_notified(db_sessions: SessionFactory) -> None:
    async with transaction(db_sessions) as session:
        order = (await order_in_parcels(session)).order
        user = await session.get(User, order.user_id)
        assert user is not None
        user.status = UserStatus.DELETED
        session.add(user)
        event = await publish(
            session,
            EventType.ORDER_DELIVERED,
            order.id,
            {"orderId": order.id, "userId": order.user_id},
        )
    assert await handle_once(db_sessions, notifications_subscriber(), event.id) is True
    assert await _notifications(db_sessions, order.user_id) == []


async def test_an_order_created_handled_after_the_order_ended_confirms_nothing(
    db_sessions: SessionFactory,
) -> None:
    # order.created's delivery was a dead letter; a dead letter does not hold back its
    # order's later events, so the cancellation was notified first. Replayed then, it
    # must not tell the customer, after "cancelled", that the order is confirmed.
    subscriber = notifications_subscriber()
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=4599)
        created = await publish(session, EventType.ORDER_CREATED, order.id, order_created(order))
        order.status = OrderStatus.CANCELLED
        session.add(order)
        cancelled = await publish(
            session, EventType.ORDER_CANCELLED, order.id, order_cancelled(order)
        )
    assert await handle_once(db_sessions, subscriber, cancelled.id) is True
    assert await handle_once(db_sessions, subscriber, created.id) is True  # the replay

    rows = await _notifications(db_sessions, user.id)
    assert [(r.kind, r.event_id) for r in rows] == [("order_cancelled", cancelled.id)]


async def test_a_refund_that_bounced_notifies_the_customer_once(
    db_sessions: SessionFactory,
) -> None:
    subscriber = notifications_subscriber()
    async with transaction(db_sessions) as session:
        order = (await order_in_parcels(session)).order
        event = await publish(
            session,
            EventType.PAYMENT_REFUND_FAILED,
            order.id,
            {
                "orderId": order.id,
                "refundId": "re_bounced",
                "amount": 1250,
                "currency": "USD",
                "reason": "lost_or_stolen_card",
                "returnId": "ret_1",
            },
        )
    assert await handle_once(db_sessions, subscriber, event.id) is True
    assert await handle_once(db_sessions, subscriber, event.id) is False

    [row] = await _notifications(db_sessions, order.user_id)
    assert (row.kind, row.title, row.body) == (
        "refund_failed",
        f"Refund of 12.50 USD for order {order.id} not completed",
        "The refund did not reach you: the card it was sent to was reported lost or stolen. "
        "The money is safe with us and will be refunded again; we have emailed you the "
        "details.",
    )
    assert row.data == {"orderId": order.id, "returnId": "ret_1", "refundId": "re_bounced"}


async def test_a_return_settled_with_nothing_refunded_is_not_a_refund_of_zero(
    db_sessions: SessionFactory,
) -> None:
    # Staff settle a return whose refund was refused with 0 when the money went back
    # another way (a staff refund, notified as payment.refunded): "We refunded 0.00 USD"
    # would tell the customer nothing true. The return's email says nothing either.
    subscriber = notifications_subscriber()
    async with transaction(db_sessions) as session:
        order = (await order_in_parcels(session)).order
        settled = {"orderId": order.id, "currency": "USD", "settled": True, "owed": 1250}
        nothing = await publish(
            session,
            EventType.RETURN_REFUNDED,
            order.id,
            settled | {"amount": 0, "returnId": "ret_1", "refundId": "re_refused"},
        )
        some = await publish(
            session,
            EventType.RETURN_REFUNDED,
            order.id,
            settled | {"amount": 700, "returnId": "ret_2", "refundId": "re_2"},
        )
    for event in (nothing, some):
        assert await handle_once(db_sessions, subscriber, event.id) is True

    rows = await _notifications(db_sessions, order.user_id)
    assert [(r.event_id, r.body) for r in rows] == [
        (some.id, f"We refunded 7.00 USD for your return from order {order.id}.")
    ]


async def test_a_return_of_a_free_order_says_no_refund_is_due(
    db_sessions: SessionFactory,
) -> None:
    """Goods that cost nothing (a 100 % coupon) come back: "no refund is due", and no
    "We refunded 0.00 USD" when the return closes (both announced a refund of 0.00)."""
    subscriber = notifications_subscriber()
    async with transaction(db_sessions) as session:
        order = (await order_in_parcels(session)).order
        base = {"orderId": order.id, "currency": "USD", "returnId": "ret_free"}
        received = await publish(
            session,
            EventType.RETURN_RECEIVED,
            order.id,
            base
            | {
                "refundAmount": 0,
                "refund": {"goods": 0, "tax": 0, "shipping": 0, "capped": False},
                "lines": [],
            },
        )
        refunded = await publish(
            session, EventType.RETURN_REFUNDED, order.id, base | {"amount": 0, "refundId": None}
        )
    for event in (received, refunded):
        assert await handle_once(db_sessions, subscriber, event.id) is True

    rows = await _notifications(db_sessions, order.user_id)
    assert [(r.event_id, r.title, r.body) for r in rows] == [
        (
            received.id,
            "Return ret_free received",
            f"Your return from order {order.id} has arrived; no refund is due: what you "
            "returned cost nothing.",
        )
    ]


async def test_a_bounced_refund_never_counted_is_told_at_its_own_amount(
    db_sessions: SessionFactory,
) -> None:
    """A staff refund whose answer was lost and that bounced: the payment's refunded
    amount comes down by nothing (``amount`` 0, it was never counted), but 10.00 did
    not reach the customer (the notification said a refund of 0.00 USD)."""
    subscriber = notifications_subscriber()
    async with transaction(db_sessions) as session:
        order = (await order_in_parcels(session)).order
        event = await publish(
            session,
            EventType.PAYMENT_REFUND_FAILED,
            order.id,
            {
                "orderId": order.id,
                "refundId": "re_lost",
                "amount": 0,
                "refundAmount": 1000,
                "currency": "USD",
                "reason": "lost_or_stolen_card",
            },
        )
    assert await handle_once(db_sessions, subscriber, event.id) is True
    [row] = await _notifications(db_sessions, order.user_id)
    assert row.title == f"Refund of 10.00 USD for order {order.id} not completed"
