"""The fulfilment order's changes: open it, cut shipments from it, hold, release, cancel.

``FulfillmentWorkflow`` is the one caller (through ``activities.fulfillment``); each
method is one transaction's work, safe to repeat (the workflow retries activities), and
leaves the fulfilment's and the order's statuses derived by ``FulfillmentProgress``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, RetryShortly, ValidationFailed
from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.fulfillment import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
)
from models.orders import Order, TimelineAudience
from services.fulfillment.progress import FulfillmentProgress
from services.fulfillment.repository import FulfillmentRepository
from services.order_repository import OrderRepository
from workflows.types.fulfillment_orders import (
    FulfillmentCancelled,
    FulfillmentChange,
    FulfillmentOpened,
    LineQuantity,
    ShipmentCreated,
    ShipmentState,
)

DEFAULT_WEIGHT_OZ = 16.0


class FulfillmentOnHold(Conflict):
    code = "fulfillment_on_hold"
    title = "The fulfilment order is on hold"


class FulfillmentClosed(Conflict):
    code = "fulfillment_closed"
    title = "The fulfilment order is cancelled or delivered"


class FulfillmentHasLabels(Conflict):
    code = "fulfillment_has_labels"
    title = "A shipment of this fulfilment order has a label"


class FulfillmentNotOnHold(Conflict):
    code = "fulfillment_not_on_hold"
    title = "The fulfilment order is not on hold"


class UnknownOrderLine(ValidationFailed):
    code = "unknown_order_line"
    title = "The line is not part of this fulfilment order"


class QuantityExceedsUnassigned(ValidationFailed):
    code = "quantity_exceeds_unassigned"
    title = "More units than are left to ship"


CLOSED = frozenset({FulfillmentStatus.CANCELLED, FulfillmentStatus.DELIVERED})


class FulfillmentUnavailable(RetryShortly):
    """A fulfilment step (its activity) failed for a reason of the moment and the
    workflow's Update gave up on it (``workflows.fulfillment_parcels.as_refusal``):
    nothing was changed, the same request may go through a moment later."""

    code = "fulfillment_unavailable"
    title = "The fulfilment step could not complete"


class FulfillmentService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = FulfillmentRepository(session)
        self.orders = OrderRepository(session)
        self.progress = FulfillmentProgress(session)

    async def open(self, order_id: str, priority: int, level: str) -> FulfillmentOpened:
        """The order's fulfilment order, with one line per order line; once per order."""
        order = await self.orders.require(order_id)
        order_lines = await self.orders.lines(order_id)
        draft = Fulfillment(
            order_id=order_id,
            status=FulfillmentStatus.OPEN,
            priority=priority,
            priority_level=level,
            shipping_address=dict(order.shipping_address),
        )
        lines = [
            FulfillmentLine(
                fulfillment_id=draft.id,
                order_line_id=ln.id,
                product_id=ln.product_id,
                sku=ln.sku,
                name=ln.name,
                quantity=ln.quantity,
            )
            for ln in order_lines
        ]
        if await self.repo.insert_once(draft, lines):
            await self.orders.add_event(
                order.id,
                order.status,
                "fulfilment order opened",
                {"fulfillmentId": draft.id, "priority": priority, "priorityLevel": level},
                audience=TimelineAudience.STAFF,
            )
            # Just inserted: nothing to read back (issue #15, two statements per order);
            # the lines' ids were made in this order, the order ``lines`` reads them in.
            return _opened(order, draft, lines)
        earlier = await self.repo.for_order(order_id)
        assert earlier is not None  # inserted by an earlier attempt
        # Opened again (a retry, or a run reset to before what it did since): with the
        # hold and the parcels as they are now, for the run to take.
        opened = _opened(order, earlier, await self.repo.lines(earlier.id))
        opened.hold_reason = earlier.hold_reason
        opened.shipments = await self._parcels(earlier.id)
        return opened

    async def _parcels(self, fulfillment_id: str) -> list[ShipmentState]:
        shipments = await self.repo.shipments(fulfillment_id)
        return parcel_states(shipments, await self.repo.shipment_lines([s.id for s in shipments]))

    async def create_shipment(
        self,
        fulfillment_id: str,
        lines: Sequence[LineQuantity],
        weight_oz: float | None = None,
        *,
        shipment_id: str | None = None,
    ) -> ShipmentCreated:
        """A parcel (``pending``; its ``ShipmentWorkflow`` buys the label) with ``lines``.
        With ``shipment_id``, a shipment already inserted under it is answered again."""
        fulfillment = await self.repo.require(fulfillment_id, lock=True)
        if shipment_id is not None:
            existing = await self.repo.shipment(shipment_id)
            if existing is not None and existing.fulfillment_id == fulfillment.id:
                return await self._created(existing, fulfillment)
        if fulfillment.status in CLOSED:
            raise FulfillmentClosed(f"the fulfilment order is {fulfillment.status}")
        if fulfillment.hold_reason is not None:
            raise FulfillmentOnHold(
                f"the fulfilment order is on hold: {fulfillment.hold_reason}",
                reason=fulfillment.hold_reason,
            )
        progress = {p.order_line_id: p for p in await self.progress.lines(fulfillment)}
        wanted: dict[str, int] = {}
        for line in lines:
            if line.order_line_id not in progress:
                raise UnknownOrderLine(
                    f"order line {line.order_line_id} is not in this fulfilment order",
                    order_line_id=line.order_line_id,
                )
            wanted[line.order_line_id] = wanted.get(line.order_line_id, 0) + line.quantity
        for order_line_id, quantity in wanted.items():
            unassigned = progress[order_line_id].unassigned
            if quantity > unassigned:
                raise QuantityExceedsUnassigned(
                    f"{quantity} of order line {order_line_id} asked, {unassigned} left to ship",
                    order_line_id=order_line_id,
                    requested=quantity,
                    unassigned=unassigned,
                )
        products = {ln.order_line_id: ln.product_id for ln in await self.repo.lines(fulfillment.id)}
        shipment = Shipment(
            fulfillment_id=fulfillment.id,
            order_id=fulfillment.order_id,
            status=ShipmentStatus.PENDING,
            weight_oz=weight_oz or DEFAULT_WEIGHT_OZ,
        )
        if shipment_id is not None:
            shipment.id = shipment_id
        await self.repo.add_shipment(
            shipment,
            [
                ShipmentLine(
                    shipment_id=shipment.id,
                    order_line_id=order_line_id,
                    product_id=products[order_line_id],
                    quantity=quantity,
                )
                for order_line_id, quantity in wanted.items()
            ],
        )
        fulfillment = await self.progress.refresh(fulfillment.id)
        await self.orders.add_event(
            fulfillment.order_id,
            (await self.orders.require(fulfillment.order_id)).status,
            "shipment created",
            {
                "shipmentId": shipment.id,
                "lines": [{"orderLineId": k, "quantity": v} for k, v in wanted.items()],
            },
            audience=TimelineAudience.CUSTOMER,
        )
        return await self._created(shipment, fulfillment)

    async def _created(self, shipment: Shipment, fulfillment: Fulfillment) -> ShipmentCreated:
        lines = await self.repo.shipment_lines([shipment.id])
        return ShipmentCreated(
            shipment_id=shipment.id,
            status=shipment.status,
            lines=[
                LineQuantity(order_line_id=ln.order_line_id, quantity=ln.quantity) for ln in lines
            ],
            fulfillment_status=fulfillment.status,
        )

    async def hold(
        self, fulfillment_id: str, reason: str, key: str | None = None
    ) -> FulfillmentChange:
        """Put it on hold for staff (``fulfillment.on_hold``); a held one keeps its first
        reason, and a cancelled or delivered one is left alone. ``changed``: the hold in
        place is this one, also when a repeat finds it (a retry whose first answer was
        lost: the workflow learns the reason from it, and lets staff release it).
        ``key`` names what the hold is for (a parcel's exception): such a hold is placed
        once, its timeline entry keyed; asked for again once staff released it (a reset
        run told of the exception again) it changes nothing and nobody is emailed."""
        fulfillment = await self.repo.require(fulfillment_id, lock=True)
        if fulfillment.hold_reason is not None or fulfillment.status in CLOSED:
            return FulfillmentChange(
                status=fulfillment.status,
                changed=fulfillment.hold_reason == reason and fulfillment.status not in CLOSED,
            )
        order = await self.orders.require(fulfillment.order_id)
        entry = {"fulfillmentId": fulfillment.id, "reason": reason}
        if key is not None and not await self.orders.add_event(
            order.id,
            order.status,
            "fulfilment on hold",
            entry,
            audience=TimelineAudience.STAFF,
            key=key,
        ):
            return FulfillmentChange(status=fulfillment.status, changed=False)
        fulfillment.hold_reason = reason
        fulfillment.held_at = utcnow()
        self.repo.stage(fulfillment)
        fulfillment = await self.progress.refresh(fulfillment.id)
        if key is None:
            await self.orders.add_event(
                order.id, order.status, "fulfilment on hold", entry, audience=TimelineAudience.STAFF
            )
        await publish(
            self.session,
            EventType.FULFILLMENT_ON_HOLD,
            order.id,
            {
                "orderId": order.id,
                "fulfillmentId": fulfillment.id,
                "reason": reason,
                "heldAt": (fulfillment.held_at or utcnow()).isoformat(),
            },
        )
        return FulfillmentChange(status=fulfillment.status, changed=True)

    async def release(self, fulfillment_id: str) -> FulfillmentChange:
        """Lift the hold; the status is derived again from the parcels."""
        fulfillment = await self.repo.require(fulfillment_id, lock=True)
        if fulfillment.hold_reason is None:
            return FulfillmentChange(status=fulfillment.status, changed=False)
        fulfillment.hold_reason = None
        fulfillment.held_at = None
        if fulfillment.status is FulfillmentStatus.ON_HOLD:
            # Derived afresh below; ``on_hold`` is no starting point for it.
            fulfillment.status = FulfillmentStatus.OPEN
        self.repo.stage(fulfillment)
        fulfillment = await self.progress.refresh(fulfillment.id)
        order = await self.orders.require(fulfillment.order_id)
        await self.orders.add_event(
            order.id,
            order.status,
            "fulfilment released",
            {"fulfillmentId": fulfillment.id},
            audience=TimelineAudience.STAFF,
        )
        return FulfillmentChange(status=fulfillment.status, changed=True)

    async def cancel(self, fulfillment_id: str, reason: str | None) -> FulfillmentCancelled:
        """Cancel before any label: pending parcels are cancelled, then the fulfilment.
        409 ``fulfillment_has_labels`` once a parcel is past ``pending``. The order's
        own undoing (stock, payment, status) is the workflow's next steps."""
        fulfillment = await self.repo.require(fulfillment_id, lock=True)
        shipments = await self.repo.shipments(fulfillment.id)
        if fulfillment.status is FulfillmentStatus.CANCELLED:
            return FulfillmentCancelled(
                cancelled_shipments=[
                    s.id for s in shipments if s.status == ShipmentStatus.CANCELLED
                ],
                status=fulfillment.status,
            )
        labelled = [
            s.id
            for s in shipments
            if s.status not in (ShipmentStatus.PENDING, ShipmentStatus.CANCELLED)
        ]
        if labelled:
            raise FulfillmentHasLabels(
                "a shipment has a label: the order can no longer be cancelled",
                shipment_ids=labelled,
            )
        now = utcnow()
        cancelled: list[str] = []
        for shipment in shipments:
            if shipment.status == ShipmentStatus.PENDING:
                shipment.status = ShipmentStatus.CANCELLED
                shipment.updated_at = now
                self.repo.stage(shipment)
            if shipment.status == ShipmentStatus.CANCELLED:
                cancelled.append(shipment.id)
        fulfillment.status = FulfillmentStatus.CANCELLED
        fulfillment.cancelled_at = now
        fulfillment.updated_at = now
        self.repo.stage(fulfillment)
        order = await self.orders.require(fulfillment.order_id)
        await self.orders.add_event(
            order.id,
            order.status,
            "fulfilment cancelled",
            {"fulfillmentId": fulfillment.id, "reason": reason, "shipmentIds": cancelled},
            # The customer's entry is the order's own cancellation (a status change).
            audience=TimelineAudience.STAFF,
        )
        await self.session.flush()
        return FulfillmentCancelled(cancelled_shipments=cancelled, status=fulfillment.status)


def _opened(
    order: Order, fulfillment: Fulfillment, stored: Sequence[FulfillmentLine]
) -> FulfillmentOpened:
    return FulfillmentOpened(
        fulfillment_id=fulfillment.id,
        order_id=order.id,
        status=fulfillment.status,
        lines=[LineQuantity(order_line_id=ln.order_line_id, quantity=ln.quantity) for ln in stored],
        user_id=order.user_id,
        # Kept in the workflow's history (until the namespace's retention), where an
        # erasure does not reach: no address, no name. Its cancellation email reads them
        # when sent, under the account's hold (``services.email_recipients``).
        email="",
        name="",
        total=order.total,
        currency=order.currency,
    )


def parcel_states(
    shipments: Sequence[Shipment], lines: Sequence[ShipmentLine]
) -> list[ShipmentState]:
    """The parcels as ``FulfillmentWorkflow`` keeps them, from their rows."""
    return [
        ShipmentState(
            shipment_id=s.id,
            status=s.status,
            delayed=s.delayed,
            lines=[
                LineQuantity(order_line_id=ln.order_line_id, quantity=ln.quantity)
                for ln in lines
                if ln.shipment_id == s.id
            ],
        )
        for s in shipments
    ]
