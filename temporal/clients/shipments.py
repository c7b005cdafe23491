"""``ShipmentWorkflows``: the one way the API talks to a parcel's ``ShipmentWorkflow``.

The workflow is started by its ``FulfillmentWorkflow`` (a child, ``temporal.clients.
fulfillment``); this client passes the carrier's webhooks on, asks where a parcel
stands, and asks for a refused label to be tried again: a ``retry_label`` owed by the
correction's transaction (a ``workflow_starts`` row, ``signal_only``), sent after its
commit or by the relay, so a process that dies in between loses nothing.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import WorkflowHandle

from models.workflow_starts import WorkflowStart
from services import workflow_starts
from temporal.clients.connection import TemporalConnection, WorkflowNotFound, call
from temporal.queues import TaskQueue
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    RETRY_LABEL_SIGNAL,
    SHIPMENT_WORKFLOW,
    STATUS_QUERY,
    CarrierUpdate,
    RetryLabel,
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

    @staticmethod
    async def request_retry_label(
        session: AsyncSession, shipment_id: str, correction_id: str
    ) -> WorkflowStart:
        """In the correction's transaction: the parcel's workflow is to try the label the
        carrier refused again. The caller sends it after the commit
        (``WorkflowStarts.start``); if that never happens, the relay does. Sent twice
        (the relay after a lost answer), the workflow acts once: the signal names the
        correction."""
        return await workflow_starts.request_signal(
            session,
            workflow_type=SHIPMENT_WORKFLOW,
            workflow_id=shipment_workflow_id(shipment_id),
            task_queue=str(TaskQueue.ORDERS),
            signal=RETRY_LABEL_SIGNAL,
            arg=RetryLabel(correction_id=correction_id),
        )
