"""``notifications``: what a customer would want to hear about their order, written as one
notification for the order's customer (``/api/notifications``, pushed live at
``/api/events/stream``).

One notification per (event, user): the relay's receipt runs the handler once, and the
table's unique (event id, user) keeps a replayed or redelivered event from writing a
second one even so. Events of an order whose customer's account is closed write nothing
(the account is held from that read to the commit, so none is written after an erasure),
nor does an ``order.created`` handled once the order was cancelled or failed (late: its
ending is the news), nor a return closed with nothing refunded (settled by staff, or
goods that cost nothing: its receipt said no refund is due).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.money import Money
from models.notifications import NotificationKind
from models.orders import OrderStatus
from services.events.handlers.refund_failures import explain_refund_failure, refund_amount
from services.events.handlers.returns import no_refund_because
from services.events.subscribers import DomainEvent, Subscriber
from services.notifications.repository import NewNotification, NotificationRepository
from services.order_repository import OrderRepository
from services.users import UserRepository

log = logging.getLogger(__name__)

NAME = "notifications"
EVENT_TYPES = frozenset(
    {
        EventType.ORDER_CREATED,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_FAILED,
        EventType.PAYMENT_FAILED,
        EventType.PAYMENT_REFUNDED,
        EventType.PAYMENT_REFUND_FAILED,
        EventType.SHIPMENT_SHIPPED,
        EventType.ORDER_DELIVERED,
        EventType.RETURN_RECEIVED,
        EventType.RETURN_REFUNDED,
    }
)
# An order in these says nothing more of its confirmation (its ending is notified).
ENDED = frozenset({OrderStatus.CANCELLED, OrderStatus.FAILED})
# What the notification's ``data`` carries from the event, when present.
DATA_KEYS = ("orderId", "shipmentId", "returnId", "refundId", "trackingCode", "trackingUrl")


def notifications_subscriber() -> Subscriber:
    return Subscriber(NAME, EVENT_TYPES, write_notification)


async def write_notification(event: DomainEvent, session: AsyncSession) -> None:
    data = event.data
    if event.type is EventType.PAYMENT_REFUNDED and data.get("returnId"):
        return  # a return's refund: its customer hears of it from return.refunded
    if event.type is EventType.RETURN_REFUNDED and not data.get("amount"):
        # Nothing refunded: a return of goods that cost nothing (its receipt said no
        # refund is due), or settled by staff when the money went back another way (a
        # staff refund, notified as payment.refunded); "we refunded 0.00" says nothing
        # true. The return's email is left out alike (handlers/returns.py).
        return
    order = await OrderRepository(session).get(str(data.get("orderId") or event.aggregate_id))
    # Held to the commit (``UserRepository.hold``), as a customer email is: an erasure
    # waits for this notification to be written, and its ``account_erasure`` then deletes
    # it; one handled after the erasure finds the account closed and writes nothing.
    if order is None or await UserRepository(session).hold(order.user_id) is None:
        log.info("no customer to notify", extra={"event": event.id, "type": str(event.type)})
        return
    if event.type is EventType.ORDER_CREATED and order.status in ENDED:
        # Handled after the order ended (a dead letter replayed once its cancellation was
        # notified, or a cancel quicker than the relay): "confirmed" would now mislead.
        log.info("order ended before its confirmation was notified", extra={"order": order.id})
        return
    kind, title, body = describe(event.type, order.id, data)
    await NotificationRepository(session).add(
        NewNotification(
            user_id=order.user_id,
            kind=kind,
            title=title,
            body=body,
            data={"orderId": order.id} | {k: data[k] for k in DATA_KEYS if data.get(k)},
            event_id=event.id,
        )
    )


def describe(event_type: EventType, order_id: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """The notification's kind, title and body for one event of the order."""
    reason = str(data.get("reason") or "").strip()
    match event_type:
        case EventType.ORDER_CREATED:
            return (
                NotificationKind.ORDER_CONFIRMED,
                f"Order {order_id} confirmed",
                f"We have your order ({_items(data)}, {_money(data.get('total'), data)}) and "
                "will let you know when it ships.",
            )
        case EventType.ORDER_CANCELLED:
            return (
                NotificationKind.ORDER_CANCELLED,
                f"Order {order_id} cancelled",
                _sentence("Your order was cancelled", reason) + _refund_news(data),
            )
        case EventType.ORDER_FAILED:
            return (
                NotificationKind.ORDER_FAILED,
                f"Order {order_id} could not be completed",
                _sentence("We could not complete your order", reason) + _refund_news(data),
            )
        case EventType.PAYMENT_FAILED:
            return (
                NotificationKind.PAYMENT_FAILED,
                f"Payment for order {order_id} did not go through",
                _sentence("Your payment was not accepted", reason)
                + " Your order was not placed; you can try again with another card.",
            )
        case EventType.PAYMENT_REFUNDED:
            return (
                NotificationKind.PAYMENT_REFUNDED,
                f"Refund of {_money(data.get('amount'), data)} for order {order_id}",
                "The refund is on its way back to your card; it can take a few days to "
                "show on your statement.",
            )
        case EventType.PAYMENT_REFUND_FAILED:
            return (
                NotificationKind.REFUND_FAILED,
                f"Refund of {_money(refund_amount(data), data)} for order {order_id} not completed",
                f"The refund did not reach you: {explain_refund_failure(reason)}. The money is "
                "safe with us and will be refunded again; we have emailed you the details.",
            )
        case EventType.SHIPMENT_SHIPPED:
            carrier = (
                " ".join(str(data[k]) for k in ("carrier", "service") if data.get(k))
                or "the carrier"
            )
            tracking = (
                f" Tracking number: {data['trackingCode']}." if data.get("trackingCode") else ""
            )
            return (
                NotificationKind.SHIPMENT_SHIPPED,
                "Your parcel is on its way",
                f"A parcel from order {order_id} has shipped with {carrier}.{tracking}",
            )
        case EventType.ORDER_DELIVERED:
            return (
                NotificationKind.ORDER_DELIVERED,
                f"Order {order_id} delivered",
                "Everything in your order has been delivered. Something not right? You can "
                "return it from the order.",
            )
        case EventType.RETURN_RECEIVED:
            return (
                NotificationKind.RETURN_RECEIVED,
                f"Return {data.get('returnId') or ''} received",
                f"Your return from order {order_id} has arrived; "
                + (
                    f"we will refund {_money(data['refundAmount'], data)}."
                    if data.get("refundAmount")
                    else f"no refund is due: {no_refund_because(data)}."
                ),
            )
        case EventType.RETURN_REFUNDED:
            return (
                NotificationKind.RETURN_REFUNDED,
                f"Return {data.get('returnId') or ''} refunded",
                f"We refunded {_money(data.get('amount'), data)} for your return from order "
                f"{order_id}.",
            )
    raise ValueError(f"the notifications subscriber does not take {event_type}")


def _refund_news(data: dict[str, Any]) -> str:
    """What became of the money: refunded, unless the undo's refund failed at Stripe
    (``unrefunded``, with its own ``payment.refund_failed`` notification and email)."""
    if isinstance(data.get("unrefunded"), int) and data["unrefunded"] > 0:
        return (
            f" The refund of {_money(data['unrefunded'], data)} did not go through; the "
            "money is safe with us and will be refunded again."
        )
    return " Any payment taken is refunded."


def _sentence(text: str, reason: str) -> str:
    return f"{text}: {reason.rstrip('.')}." if reason else f"{text}."


def _items(data: dict[str, Any]) -> str:
    lines = data.get("items")
    count = (
        sum(int(i.get("quantity") or 0) for i in lines if isinstance(i, dict))
        if isinstance(lines, list)
        else 0
    )
    return f"{count} item" + ("" if count == 1 else "s")


def _money(amount: object, data: dict[str, Any]) -> str:
    """``1234`` USD as ``12.34 USD`` (minor units, the currency's own exponent)."""
    if not isinstance(amount, int):
        return "the amount due"
    return Money(amount, str(data.get("currency") or "USD")).format()
