"""``ReturnWorkflow``'s steps around the return label: approve (the label is issued with
the approval), decline, and cancel (the label voided). Each moves the return forward
only from ``requested`` (or ``approved`` for a cancel), in one transaction with its
event; the carrier is called outside the transactions, its shipment id saved before the
label is bought so that a retry buys that same shipment's label.
"""

from __future__ import annotations

from datetime import timedelta

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from integrations.shipping.factory import ship_from_address
from integrations.shipping.provider import (
    ParcelSpec,
    PostalAddress,
    ShipmentRequest,
    ShippingProvider,
)
from models.base import utcnow
from models.orders import Order, TimelineAudience
from models.returns import ReturnRequest, ReturnStatus
from services.order_repository import OrderRepository
from services.returns.repository import ReturnRepository
from services.returns.timeline import announced

# The weight a returned unit is booked at (the carrier needs one; ours are estimates).
UNIT_WEIGHT_OZ = 16.0


class ReturnLabels:
    def __init__(
        self, sessions: SessionFactory, settings: Settings, shipping: ShippingProvider
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._shipping = shipping

    async def approve(
        self, return_id: str, *, staff_id: str | None, auto: bool, ship_by: timedelta
    ) -> ReturnStatus:
        """Issue the return label and approve. The provider's shipment id is saved
        before the label is bought, so a retry buys that same shipment's label."""
        async with self._sessions() as session:
            request = await ReturnRepository(session).require(return_id)
            if request.status != ReturnStatus.REQUESTED:
                return ReturnStatus(request.status)
            provider_id = request.provider_shipment_id
            if provider_id is None:
                order = await OrderRepository(session).require(request.order_id)
                units = sum(
                    ln.quantity for ln in await ReturnRepository(session).lines([return_id])
                )
                booking = self._booking(request, order, units)
        if provider_id is None:
            created = await self._shipping.create_shipment(booking)
            async with transaction(self._sessions) as session:
                returns = ReturnRepository(session)
                request = await returns.require(return_id, lock=True)
                if request.provider_shipment_id is None:
                    request.provider_shipment_id = created.provider_shipment_id
                    returns.stage(request)
                provider_id = request.provider_shipment_id
        label = await self._shipping.buy_label(provider_id)
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status != ReturnStatus.REQUESTED:
                return ReturnStatus(request.status)
            now = utcnow()
            request.label_url = label.label_url
            request.tracking_code = label.tracking_code
            request.tracking_url = label.tracking_url
            request.status = ReturnStatus.APPROVED
            request.auto_approved = auto
            request.approved_at = request.decided_at = now
            request.ship_by = now + ship_by
            request.updated_at = now
            returns.stage(request)
            order_id, payload = await announced(
                session,
                request,
                "return approved",
                {
                    "labelUrl": label.label_url,
                    "trackingCode": label.tracking_code,
                    "trackingUrl": label.tracking_url,
                    "shipBy": request.ship_by.isoformat(),
                    "autoApproved": auto,
                    "by": staff_id,
                },
                audience=TimelineAudience.CUSTOMER,
            )
            await publish(session, EventType.RETURN_APPROVED, order_id, payload)
            return ReturnStatus.APPROVED

    def _booking(self, request: ReturnRequest, order: Order, units: int) -> ShipmentRequest:
        address = order.address
        return ShipmentRequest(
            reference=request.id,
            is_return=True,
            to_address=ship_from_address(self._settings),
            from_address=PostalAddress(
                name=address.name,
                street1=address.street,
                city=address.city,
                state=address.state,
                zip=address.zip,
                country=address.country,
                phone=address.phone,
                email=order.email,
            ),
            parcel=ParcelSpec(weight_oz=UNIT_WEIGHT_OZ * max(units, 1)),
        )

    async def decline(self, return_id: str, *, reason: str, staff_id: str | None) -> ReturnStatus:
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status != ReturnStatus.REQUESTED:
                return ReturnStatus(request.status)
            now = utcnow()
            request.status = ReturnStatus.DECLINED
            request.decline_reason = reason
            request.decided_at = request.closed_at = request.updated_at = now
            returns.stage(request)
            order_id, payload = await announced(
                session,
                request,
                "return declined",
                {"reason": reason, "by": staff_id},
                audience=TimelineAudience.CUSTOMER,
            )
            await publish(session, EventType.RETURN_DECLINED, order_id, payload)
            return ReturnStatus.DECLINED

    async def cancel(self, return_id: str) -> ReturnStatus:
        """Not sent back in time: void the unused label, cancel, tell the customer."""
        async with self._sessions() as session:
            request = await ReturnRepository(session).require(return_id)
        if request.status != ReturnStatus.APPROVED:
            return ReturnStatus(request.status)
        if request.provider_shipment_id is not None:
            await self._shipping.refund_label(request.provider_shipment_id)
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status != ReturnStatus.APPROVED:
                return ReturnStatus(request.status)
            now = utcnow()
            request.status = ReturnStatus.CANCELLED
            request.closed_at = request.updated_at = now
            returns.stage(request)
            order_id, payload = await announced(
                session,
                request,
                "return cancelled: not sent back in time",
                {"shipBy": request.ship_by.isoformat() if request.ship_by else None},
                audience=TimelineAudience.CUSTOMER,
            )
            await publish(session, EventType.RETURN_CANCELLED, order_id, payload)
            return ReturnStatus.CANCELLED
