"""``FulfillmentWorkflow``'s database steps (queue ``orders``), thin over
``services.fulfillment.service``; each is one transaction and safe to repeat."""

from __future__ import annotations

from temporalio import activity

from core.db import SessionFactory, transaction
from services.fulfillment.service import FulfillmentService
from temporal.errors import application_errors
from workflows.types.fulfillment_orders import (
    FulfillmentCancelInput,
    FulfillmentCancelled,
    FulfillmentChange,
    FulfillmentHoldInput,
    FulfillmentInput,
    FulfillmentOpened,
    FulfillmentRef,
    NewShipment,
    ShipmentCreated,
)


class FulfillmentActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="fulfillment.open")
    async def open(self, input: FulfillmentInput) -> FulfillmentOpened:
        """The order's fulfilment order and its lines (once per order)."""
        with application_errors():
            async with transaction(self._sessions) as session:
                return await FulfillmentService(session).open(
                    input.order_id, input.priority, input.priority_level
                )

    @activity.defn(name="fulfillment.create_shipment")
    async def create_shipment(self, input: NewShipment) -> ShipmentCreated:
        with application_errors():
            async with transaction(self._sessions) as session:
                return await FulfillmentService(session).create_shipment(
                    input.fulfillment_id,
                    input.lines,
                    input.weight_oz,
                    shipment_id=input.shipment_id,
                )

    @activity.defn(name="fulfillment.hold")
    async def hold(self, input: FulfillmentHoldInput) -> FulfillmentChange:
        with application_errors():
            async with transaction(self._sessions) as session:
                return await FulfillmentService(session).hold(
                    input.fulfillment_id, input.reason, input.key
                )

    @activity.defn(name="fulfillment.release")
    async def release(self, input: FulfillmentRef) -> FulfillmentChange:
        with application_errors():
            async with transaction(self._sessions) as session:
                return await FulfillmentService(session).release(input.fulfillment_id)

    @activity.defn(name="fulfillment.cancel")
    async def cancel(self, input: FulfillmentCancelInput) -> FulfillmentCancelled:
        with application_errors():
            async with transaction(self._sessions) as session:
                return await FulfillmentService(session).cancel(input.fulfillment_id, input.reason)
