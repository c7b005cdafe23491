"""Staff correct the address a carrier refused a parcel's label for.

The parcel's ``ShipmentWorkflow`` waits after a refusal (``ShipmentView.awaiting_retry``);
only then is an address taken. It is stored on the fulfilment (the order's destination:
every later label of the order goes there), the parcel's provider shipment is forgotten
(it was created for the old address, so the retried booking creates one for the new),
and the order's timeline says so. The ``retry_label`` signal is owed by the same
transaction (a ``workflow_starts`` row): the caller sends it once this commits, and the
relay does if the caller never gets to (its process died in between) or its answer was
lost. The signal names the correction (``correctionId``, on the timeline entry too), so
a second send of it buys no second label.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.fulfillment import Shipment, ShipmentStatus
from models.orders import ShippingAddress, TimelineAudience
from models.workflow_starts import WorkflowStart
from services.addresses import clean_shipping_address
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.tracking import locked_shipment
from services.order_repository import OrderRepository
from temporal.clients.connection import WorkflowNotFound
from temporal.clients.shipments import ShipmentWorkflows


class ShipmentNotAwaitingAddress(Conflict):
    code = "shipment_not_awaiting_address"
    title = "The shipment is not waiting for a corrected address"


class ShipmentAddresses:
    def __init__(self, session: AsyncSession, workflows: ShipmentWorkflows) -> None:
        self.session = session
        self.workflows = workflows

    async def correct(
        self, shipment_id: str, fields: dict[str, Any]
    ) -> tuple[Shipment, WorkflowStart]:
        """Store ``fields`` (``ShippingAddressIn``'s; the name, if not given, stays) as
        where the parcel goes. 404
        ``shipment_not_found``; 422 ``invalid_address``; 409
        ``shipment_not_awaiting_address`` unless its label was refused and its workflow
        waits for a retry. With the parcel, the ``retry_label`` owed (to send after
        the commit)."""
        repo = FulfillmentRepository(self.session)
        current = await repo.require((await repo.require_shipment(shipment_id)).fulfillment_id)
        # Whom it is for stays, unless staff say otherwise.
        named = fields | {"name": fields.get("name") or current.shipping_address.get("name")}
        address = clean_shipping_address(named)
        try:
            view = await self.workflows.status(shipment_id)
        except WorkflowNotFound as exc:
            raise ShipmentNotAwaitingAddress(
                f"shipment {shipment_id} has no workflow waiting for it"
            ) from exc
        fulfillment, shipment = await locked_shipment(self.session, shipment_id)
        if not view.awaiting_retry or shipment.status != ShipmentStatus.PENDING:
            raise ShipmentNotAwaitingAddress(
                f"shipment {shipment_id} is {shipment.status}: only a parcel whose label "
                "the carrier refused takes a corrected address"
            )
        now = utcnow()
        fulfillment.shipping_address = _stored(address)
        fulfillment.updated_at = now
        shipment.provider_shipment_id = None
        shipment.updated_at = now
        repo.stage(fulfillment)
        repo.stage(shipment)
        orders = OrderRepository(self.session)
        order = await orders.require(shipment.order_id)
        correction_id = new_id(IdPrefix.ADDRESS_CORRECTION)
        await orders.add_event(
            order.id,
            order.status,
            f"parcel {shipment.id}: shipping address corrected, label to be tried again",
            {
                "shipmentId": shipment.id,
                "correctionId": correction_id,
                "refused": view.problem,
                "address": _stored(address),
            },
            # The customer's own address changed: theirs to see.
            audience=TimelineAudience.CUSTOMER,
        )
        retry = await ShipmentWorkflows.request_retry_label(
            self.session, shipment.id, correction_id
        )
        await self.session.flush()
        return shipment, retry


def _stored(address: ShippingAddress) -> dict[str, Any]:
    return address.model_dump(exclude_none=True)
