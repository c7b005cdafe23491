"""After the sale: the customer hears when each parcel ships and when the whole order
has arrived; staff hear of a parcel the carrier has gone quiet about.

Each email goes through the email ledger under a key that names what it is about (the
parcel, the order, the stall), so a redelivered event sends nothing twice, and a parcel
ships, or an order is delivered, in one email whatever republishes it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.settings import Settings
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from services.order_repository import OrderRepository
from services.users import UserRepository

log = logging.getLogger(__name__)

SHIPPED_TEMPLATE = "shipment_shipped"
DELIVERED_TEMPLATE = "order_delivered"
DELAYED_TEMPLATE = "shipment_delayed"


async def _greeting(session: AsyncSession, user_id: str) -> str | None:
    """Whom to greet, or None when the account is closed (no email then). The account
    is held to the handler's commit: an erasure waits for the email (``UserRepository.hold``)."""
    user = await UserRepository(session).hold(user_id)
    if user is None:
        return None
    return user.name or "there"


def shipment_shipped_email(emails: EmailService, settings: Settings) -> Subscriber:
    """One email per parcel: what is in it and the carrier's tracking link."""
    name = "shipment_shipped_email"

    async def email_customer(event: DomainEvent, session: AsyncSession) -> None:
        data = event.data
        order = await OrderRepository(session).require(str(data["orderId"]))
        customer = await _greeting(session, order.user_id)
        if customer is None:
            log.info("parcel shipped for a closed account: no email", extra={"order": order.id})
            return
        shipment_id = str(data["shipmentId"])
        base = settings.api_base_url
        await emails.deliver(
            key=f"{name}:{shipment_id}",
            template=SHIPPED_TEMPLATE,
            to=order.email,
            context={
                "name": customer,
                "order_id": order.id,
                "shipment_id": shipment_id,
                "carrier": str(data.get("carrier") or ""),
                "service": str(data.get("service") or ""),
                "tracking_code": str(data.get("trackingCode") or ""),
                "tracking_url": str(data.get("trackingUrl") or ""),
                "items": _items(data.get("items")),
                "shipment_url": f"{base}/api/orders/{order.id}/shipments/{shipment_id}",
            },
        )

    return Subscriber(name, frozenset({EventType.SHIPMENT_SHIPPED}), email_customer)


def order_delivered_email(emails: EmailService, settings: Settings) -> Subscriber:
    """One email when the last line of the order is delivered."""
    name = "order_delivered_email"

    async def email_customer(event: DomainEvent, session: AsyncSession) -> None:
        order = await OrderRepository(session).require(str(event.data["orderId"]))
        customer = await _greeting(session, order.user_id)
        if customer is None:
            log.info("order delivered for a closed account: no email", extra={"order": order.id})
            return
        lines = await OrderRepository(session).lines(order.id)
        await emails.deliver(
            key=f"{name}:{order.id}",
            template=DELIVERED_TEMPLATE,
            to=order.email,
            context={
                "name": customer,
                "order_id": order.id,
                "items": [{"name": ln.name, "quantity": ln.quantity} for ln in lines],
                "order_url": f"{settings.api_base_url}/api/orders/{order.id}",
                "returns_days": settings.return_window_days,
            },
        )

    return Subscriber(name, frozenset({EventType.ORDER_DELIVERED}), email_customer)


def shipment_delayed_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email staff (``FULFILLMENT_ALERT_EMAIL``, else ``INVENTORY_ALERT_EMAIL``) about a
    parcel with no carrier update for ``SHIPMENT_STALL_HOURS``; once per stall."""
    name = "shipment_delayed_alert"

    async def email_staff(event: DomainEvent, session: AsyncSession) -> None:
        data = event.data
        base = settings.api_base_url
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=DELAYED_TEMPLATE,
            to=settings.fulfillment_alert_email or settings.inventory_alert_email,
            context={
                "order_id": str(data["orderId"]),
                "shipment_id": str(data["shipmentId"]),
                "status": str(data.get("status") or ""),
                "carrier": str(data.get("carrier") or ""),
                "tracking_code": str(data.get("trackingCode") or ""),
                "tracking_url": str(data.get("trackingUrl") or ""),
                "stall_hours": float(data.get("stallHours") or settings.shipment_stall_hours),
                "quiet_since": str(data.get("quietSince") or ""),
                "staff_url": f"{base}/api/admin/fulfillments/{data.get('fulfillmentId', '')}",
            },
        )

    return Subscriber(name, frozenset({EventType.SHIPMENT_DELAYED}), email_staff)


def _items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [
        {"name": str(i.get("name") or i.get("productId") or ""), "quantity": int(i["quantity"])}
        for i in value
        if isinstance(i, dict)
    ]
