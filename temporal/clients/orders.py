"""``OrderWorkflows``: the one way the API talks to ``OrderWorkflow``.

It names the workflow's messages (``workflows.types.orders``) rather than importing the
workflow, so a caller loads no workflow, activity or service module through it.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)

from models.workflow_starts import WorkflowStart
from services import workflow_starts
from temporal.clients.connection import (
    TemporalConnection,
    WorkflowNotFound,
    call,
    refusal,
)
from temporal.clients.starts import WorkflowStarts
from temporal.queues import TaskQueue
from workflows.types.orders import (
    CANCEL_UPDATE,
    ORDER_WORKFLOW,
    PAYMENT_WEBHOOK_SIGNAL,
    STATUS_QUERY,
    CancelRequest,
    OrderInput,
    OrderView,
    PaymentWebhook,
)

# How long a cancel waits for the workflow to accept it, and then to finish undoing.
CANCEL_SECONDS = 10.0


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


class CancelOutcome(enum.Enum):
    DONE = "done"  # the workflow closed the order
    UNDERWAY = "underway"  # accepted; the compensations are still running
    NOT_RUNNING = "not_running"  # the workflow had already finished


class OrderWorkflows:
    def __init__(self, connection: TemporalConnection, starts: WorkflowStarts) -> None:
        self._connection = connection
        self._starts = starts

    @staticmethod
    def request_start(session: AsyncSession, input: OrderInput) -> WorkflowStart:
        """Record the order's start in the caller's transaction (placing the order)."""
        return workflow_starts.request(
            session,
            workflow_type=ORDER_WORKFLOW,
            workflow_id=workflow_id(input.order_id),
            task_queue=str(TaskQueue.ORDERS),
            input=input,
        )

    async def _handle(self, order_id: str) -> WorkflowHandle[Any, OrderView]:
        client = await self._connection.client()
        return client.get_workflow_handle(workflow_id(order_id), result_type=OrderView)

    async def status(self, order_id: str) -> OrderView:
        """The workflow's view of the order (running or finished)."""
        handle = await self._handle(order_id)
        return await call(
            handle.query(STATUS_QUERY, result_type=OrderView), what=f"order {order_id}"
        )

    async def notify_payment(self, order_id: str, webhook: PaymentWebhook) -> bool:
        """Pass a verified payment webhook on; False if the workflow has finished."""
        handle = await self._handle(order_id)
        try:
            await call(handle.signal(PAYMENT_WEBHOOK_SIGNAL, webhook), what=f"order {order_id}")
        except WorkflowNotFound:
            return False
        return True

    async def cancel(self, order_id: str, request: CancelRequest) -> CancelOutcome:
        """Ask the workflow to cancel and wait (a while) for it to finish undoing. Raises
        ``WorkflowRefused`` with the workflow's code (``order_not_cancellable``)."""
        handle = await self._handle(order_id)
        what = f"order {order_id}"
        for attempt in range(2):
            try:
                update = await call(
                    handle.start_update(
                        CANCEL_UPDATE,
                        request,
                        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                        result_type=OrderView,
                    ),
                    what=what,
                    seconds=CANCEL_SECONDS,
                )
            except WorkflowNotFound:
                # Never started (its start is still owed: start it now and ask again),
                # or already finished.
                if attempt == 0 and await self._starts.start_owed(workflow_id(order_id)):
                    continue
                return CancelOutcome.NOT_RUNNING
            except WorkflowUpdateFailedError as exc:
                raise refusal(exc, f"{what} could not be cancelled") from exc
            try:
                await asyncio.wait_for(update.result(), CANCEL_SECONDS)
            except WorkflowUpdateFailedError as exc:
                # The validator's refusal: the start returns once the Update is decided.
                raise refusal(exc, f"{what} could not be cancelled") from exc
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
                return CancelOutcome.UNDERWAY
            return CancelOutcome.DONE
        return CancelOutcome.NOT_RUNNING
