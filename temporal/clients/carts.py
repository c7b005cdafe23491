"""``CartReminderWorkflows``: keeping each cart's ``CartAbandonmentWorkflow`` in step.

A change requests a signal-with-start (``cart_changed``) in the change's transaction,
started after the commit or by the relay like every start. Closing signals
``cart_closed`` and forgets a start still owed, so a reminder cannot follow a checkout.
"""

from __future__ import annotations

import logging

from sqlmodel.ext.asyncio.session import AsyncSession

from models.workflow_starts import WorkflowStart
from services import workflow_starts
from services.workflow_starts import WorkflowStartRepository
from temporal.clients.connection import TemporalConnection, WorkflowNotFound, call
from temporal.queues import TaskQueue
from workflows.types.carts import (
    CART_ABANDONMENT_WORKFLOW,
    CART_CHANGED_SIGNAL,
    CART_CLOSED_SIGNAL,
    AbandonmentInput,
)

log = logging.getLogger(__name__)


def workflow_id(cart_id: str) -> str:
    return f"cart-abandonment-{cart_id}"


class CartReminderWorkflows:
    def __init__(self, connection: TemporalConnection) -> None:
        self._connection = connection

    @staticmethod
    async def request_start(session: AsyncSession, input: AbandonmentInput) -> WorkflowStart:
        """Start the cart's timer, or push it back if it runs (after the commit)."""
        return await workflow_starts.request_again(
            session,
            workflow_type=CART_ABANDONMENT_WORKFLOW,
            workflow_id=workflow_id(input.cart_id),
            task_queue=str(TaskQueue.NOTIFICATIONS),
            input=input,
            signal=CART_CHANGED_SIGNAL,
        )

    @staticmethod
    async def forget_owed_start(session: AsyncSession, cart_id: str) -> None:
        """In the closing transaction: a timer not started yet never will be."""
        await WorkflowStartRepository(session).discard_owed(workflow_id(cart_id))

    async def stop(self, cart_id: str) -> None:
        """Checkout or an emptied cart: no reminder. Best effort and bounded, so that it
        never fails the change that closed the cart; a failure is logged."""
        try:
            client = await self._connection.client()
            handle = client.get_workflow_handle(workflow_id(cart_id))
            await call(handle.signal(CART_CLOSED_SIGNAL), what=f"the reminder of {cart_id}")
        except WorkflowNotFound:
            return  # never started, or already finished
        except Exception as exc:
            log.warning(
                "cart reminder not stopped", extra={"cart_id": cart_id, "error": repr(exc)[:200]}
            )
