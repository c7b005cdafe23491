"""The customer's emails about a return: approved (with the label), declined, received,
refunded and cancelled, one per event, keyed in the email ledger by the subscriber's
name and the event's id (a redelivered event sends nothing twice).

A return's refund also publishes ``payment.refunded`` (with ``returnId``), which
``refund_email`` leaves to the ``return.refunded`` email here: one email per refund. An
approval handled after its return was cancelled (a dead letter replayed late) sends
nothing: the label in it is void.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.settings import Settings
from models.returns import ReturnStatus
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from services.order_repository import OrderRepository
from services.returns.repository import ReturnRepository
from services.users import UserRepository

log = logging.getLogger(__name__)

TEMPLATES = {
    EventType.RETURN_APPROVED: "return_approved",
    EventType.RETURN_DECLINED: "return_declined",
    EventType.RETURN_RECEIVED: "return_received",
    EventType.RETURN_REFUNDED: "return_refunded",
    EventType.RETURN_CANCELLED: "return_cancelled",
}


def _day(value: object) -> str:
    if not value:
        return "the date on your label"
    return f"{datetime.fromisoformat(str(value)):%B %d, %Y}"


def no_refund_because(data: dict[str, Any]) -> str:
    """Why a received return refunds nothing (``return.received`` with ``refundAmount``
    0), in a clause: its refund was capped at nothing (everything paid was refunded
    already), else its goods cost nothing (a free order)."""
    refund = data.get("refund")
    if isinstance(refund, dict) and refund.get("capped"):
        return "everything paid for the order has been refunded already"
    return "what you returned cost nothing"


def return_emails(emails: EmailService, settings: Settings) -> Subscriber:
    """One email per step of a return the customer should hear about."""
    name = "return_email"

    async def email_customer(event: DomainEvent, session: AsyncSession) -> None:
        orders = OrderRepository(session)
        order = await orders.require(str(event.data["orderId"]))
        user = await UserRepository(session).hold(order.user_id)
        if user is None:
            log.info("return of a closed account: no email", extra={"order": order.id})
            return
        data = event.data
        context: dict[str, Any] = {
            "name": user.name or "there",
            "order_id": order.id,
            "return_id": str(data["returnId"]),
            "currency": str(data.get("currency") or order.currency),
            "order_url": f"{settings.api_base_url}/api/orders/{order.id}",
        }
        if event.type is EventType.RETURN_APPROVED:
            request = await ReturnRepository(session).get(context["return_id"])
            if request is not None and request.status == ReturnStatus.CANCELLED:
                # Handled late (a dead letter replayed after the return was cancelled
                # and the customer told so): its label is void, its ship-by passed.
                log.info("approval of a cancelled return: no email", extra={"order": order.id})
                return
            context |= {
                "label_url": str(data["labelUrl"]),
                "tracking_url": data.get("trackingUrl"),
                "ship_by": _day(data.get("shipBy")),
            }
        elif event.type is EventType.RETURN_DECLINED:
            context["reason"] = str(data.get("reason") or "")
        elif event.type is EventType.RETURN_RECEIVED:
            names = {ln.product_id: ln.name for ln in await orders.lines(order.id)}
            context |= {
                "refund_amount": int(data.get("refundAmount") or 0),
                "no_refund_because": no_refund_because(data),
                "lines": [
                    {
                        "name": names.get(str(ln["productId"]), str(ln["productId"])),
                        "received": int(ln["received"]),
                        "damaged": int(ln["damaged"]),
                    }
                    for ln in data.get("lines", [])
                ],
            }
        elif event.type is EventType.RETURN_REFUNDED:
            context["amount"] = int(data.get("amount") or 0)
            if not context["amount"]:
                # Nothing refunded: a return of goods that cost nothing (its receipt's
                # email said no refund is due), or settled by staff when the money went
                # back another way (a staff refund, with its own email). "A refund of
                # 0.00" says nothing true.
                log.info("return closed without a refund: no email", extra={"order": order.id})
                return
        else:
            context["ship_by"] = _day(data.get("shipBy"))
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=TEMPLATES[event.type],
            to=order.email,
            context=context,
        )

    return Subscriber(name, frozenset(TEMPLATES), email_customer)


def return_request_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Staff (FULFILLMENT_ALERT_EMAIL) hear of a return waiting for their decision; one
    approved automatically, or a shop without that address, needs no email."""
    name = "return_request_alert"

    async def alert_staff(event: DomainEvent, session: AsyncSession) -> None:
        to = settings.fulfillment_alert_email
        if not to or event.data.get("autoApprove"):
            return
        await emails.deliver(
            key=f"{name}:{event.id}",
            template="return_requested_staff",
            to=to,
            context={
                "return_id": str(event.data["returnId"]),
                "order_id": str(event.data["orderId"]),
                "reason": str(event.data.get("reason") or ""),
                "units": sum(int(ln["quantity"]) for ln in event.data.get("lines", [])),
                "admin_url": f"{settings.api_base_url}/api/admin/returns/{event.data['returnId']}",
            },
        )

    return Subscriber(name, frozenset({EventType.RETURN_REQUESTED}), alert_staff)
