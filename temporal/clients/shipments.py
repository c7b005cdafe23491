"""``ShipmentWorkflows``: the one way the API talks to a parcel's ``ShipmentWorkflow``.

The workflow is started by its ``FulfillmentWorkflow`` (a child, ``temporal.clients.
fulfillment``); this client passes the carrier's webhooks on, asks where a parcel
stands, and asks for a refused label to be tried again.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from temporal.clients.connection import TemporalConnection, WorkflowNotFound, call
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    RETRY_LABEL_SIGNAL,
    STATUS_QUERY,
    CarrierUpdate,
    shipment_workflow_id,
)
from workflows.types.shipments import ShipmentView


class ShipmentWorkflows:
    def __init__(self, connection: TemporalConnection) -> None:
        self._connection = connection

    async def _handle(self, shipment_id: str) -> WorkflowHandle[Any, ShipmentView]:
        client = await self._connection.client()
        return client.get_workflow_handle(
            shipment_workflow_id(shipment_id), result_type=ShipmentView
        )

    async def notify_carrier(self, shipment_id: str, update: CarrierUpdate) -> bool:
        """Pass a verified carrier update on; False if the parcel's workflow has finished
        (delivered, returned, cancelled) or never ran. ``DependencyUnavailable`` if
        Temporal cannot be reached (the webhook answers 503 and the carrier retries)."""
        handle = await self._handle(shipment_id)
        try:
            await call(handle.signal(CARRIER_UPDATE_SIGNAL, update), what=f"shipment {shipment_id}")
        except WorkflowNotFound:
            return False
        return True

    async def status(self, shipment_id: str) -> ShipmentView:
        """The workflow's view of the parcel (running or finished)."""
        handle = await self._handle(shipment_id)
        return await call(
            handle.query(STATUS_QUERY, result_type=ShipmentView), what=f"shipment {shipment_id}"
        )

    async def retry_label(self, shipment_id: str) -> None:
        """Try a label the carrier refused again (after staff fixed the address)."""
        handle = await self._handle(shipment_id)
        await call(handle.signal(RETRY_LABEL_SIGNAL), what=f"shipment {shipment_id}")
