"""Keeping each signed-in shopper's ``CartAbandonmentWorkflow`` in step with their cart."""

from __future__ import annotations

import contextlib

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from core.settings import Settings
from temporal.queues import TaskQueue
from workflows.carts import AbandonmentInput, CartAbandonmentWorkflow, workflow_id


async def cart_touched(
    client: Client, settings: Settings, *, cart_id: str, user_id: str, email: str, name: str
) -> None:
    """Start the cart's reminder timer, or push it back if it is running."""
    if not settings.cart_abandonment_enabled:
        return
    await client.start_workflow(
        CartAbandonmentWorkflow.run,
        AbandonmentInput(
            cart_id=cart_id,
            user_id=user_id,
            email=email,
            name=name,
            delay_seconds=settings.cart_abandonment_delay_hours * 3600,
        ),
        id=workflow_id(cart_id),
        task_queue=str(TaskQueue.NOTIFICATIONS),
        start_signal="cart_changed",
        # After a reminder went out, new activity on the cart starts a new timer.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def cart_closed(client: Client, cart_id: str) -> None:
    """Checkout or an emptied cart: no reminder. Nothing to do if no timer runs."""
    # RPCError: not running (never started, or already finished).
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(workflow_id(cart_id)).signal(
            CartAbandonmentWorkflow.cart_closed
        )
