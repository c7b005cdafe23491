"""``FulfillmentWorkflows``: the one way the API and the relay talk to
``FulfillmentWorkflow`` (start, staff's Updates, the status query).

It names the workflow's messages (``workflows.types.fulfillment*``) rather than importing
the workflow. A validator's or activity's refusal comes back as ``WorkflowRefused`` with
the workflow's code (``fulfillment_on_hold``, ``quantity_exceeds_unassigned``, …).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)

from models.base import utcnow
from models.workflow_starts import WorkflowStart
from services.workflow_starts import WorkflowStartRepository
from temporal.clients.connection import TemporalConnection, call, refusal
from temporal.clients.starts import start_row
from temporal.queues import TaskQueue
from workflows.types.fulfillment import (
    FULFILLMENT_WORKFLOW,
    STATUS_QUERY,
    fulfillment_workflow_id,
)
from workflows.types.fulfillment_orders import (
    CANCEL_FULFILLMENT_UPDATE,
    CREATE_SHIPMENT_UPDATE,
    HOLD_UPDATE,
    RELEASE_UPDATE,
    CancelFulfillmentRequest,
    FulfillmentInput,
    FulfillmentView,
    HoldRequest,
    ShipmentCreated,
    ShipmentRequest,
)

# Staff wait this long for an Update (a database step, retried a few times).
UPDATE_SECONDS = 20.0
# How long a cancel waits for the refund and restock before answering "under way".
CANCEL_SECONDS = 10.0

R = TypeVar("R", bound=BaseModel)


class FulfillmentWorkflows:
    def __init__(self, connection: TemporalConnection) -> None:
        self._connection = connection

    async def start_once(self, session: AsyncSession, input: FulfillmentInput) -> bool:
        """Start the order's fulfilment, recorded in ``session``'s transaction (the
        relay's delivery of ``fulfillment.order_ready``). A start that fails raises, so
        the transaction rolls back and the delivery retries; a workflow that exists (or
        ran) with the id counts as started. True if this call recorded the start."""
        row = WorkflowStart(
            workflow_type=FULFILLMENT_WORKFLOW,
            workflow_id=fulfillment_workflow_id(input.order_id),
            task_queue=str(TaskQueue.ORDERS),
            input=input.model_dump(mode="json"),
            started_at=utcnow(),
        )
        recorded = await WorkflowStartRepository(session).add_once(row)
        client = await self._connection.client()
        await call(start_row(client, row), what=f"fulfilment of {input.order_id}")
        return recorded

    async def _handle(self, order_id: str) -> WorkflowHandle[Any, FulfillmentView]:
        client = await self._connection.client()
        return client.get_workflow_handle(
            fulfillment_workflow_id(order_id), result_type=FulfillmentView
        )

    async def status(self, order_id: str) -> FulfillmentView:
        handle = await self._handle(order_id)
        return await call(
            handle.query(STATUS_QUERY, result_type=FulfillmentView),
            what=f"fulfilment of {order_id}",
        )

    async def create_shipment(self, order_id: str, request: ShipmentRequest) -> ShipmentCreated:
        return await self._update(order_id, CREATE_SHIPMENT_UPDATE, request, ShipmentCreated)

    async def hold(self, order_id: str, reason: str) -> FulfillmentView:
        return await self._update(
            order_id, HOLD_UPDATE, HoldRequest(reason=reason), FulfillmentView
        )

    async def release(self, order_id: str) -> FulfillmentView:
        return await self._update(order_id, RELEASE_UPDATE, None, FulfillmentView)

    async def cancel(self, order_id: str, reason: str | None) -> FulfillmentView | None:
        """Cancel before any label: the workflow refunds, restocks and cancels the order.
        The view once done, or None if it was accepted and is still undoing after
        ``CANCEL_SECONDS`` (it finishes in the background)."""
        handle = await self._handle(order_id)
        what = f"fulfilment of {order_id}"
        try:
            update = await call(
                handle.start_update(
                    CANCEL_FULFILLMENT_UPDATE,
                    CancelFulfillmentRequest(reason=reason),
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=FulfillmentView,
                ),
                what=what,
            )
        except WorkflowUpdateFailedError as exc:
            raise refusal(exc, f"{what} could not be changed") from exc
        try:
            return await asyncio.wait_for(update.result(), CANCEL_SECONDS)
        except WorkflowUpdateFailedError as exc:
            raise refusal(exc, f"{what} could not be changed") from exc
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            return None

    async def _update(
        self, order_id: str, name: str, arg: BaseModel | None, result_type: type[R]
    ) -> R:
        handle = await self._handle(order_id)
        what = f"fulfilment of {order_id}"
        args = [] if arg is None else [arg]
        try:
            return await call(
                handle.execute_update(name, args=args, result_type=result_type),
                what=what,
                seconds=UPDATE_SECONDS,
            )
        except WorkflowUpdateFailedError as exc:
            raise refusal(exc, f"{what} could not be changed") from exc
