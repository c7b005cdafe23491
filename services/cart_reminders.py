"""Keeping each signed-in shopper's ``CartAbandonmentWorkflow`` in step with their cart.

Each function works in the change's transaction; the caller has the workflow started
(``WorkflowStarts.start``) or stopped (``CartReminderWorkflows.stop``) after the commit.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from models.workflow_starts import WorkflowStart
from services.cart_repository import CartRepository
from temporal.clients.carts import CartReminderWorkflows
from workflows.types.carts import AbandonmentInput


async def cart_touched(
    session: AsyncSession,
    settings: Settings,
    *,
    cart_id: str,
    user_id: str,
) -> WorkflowStart | None:
    """Start the cart's reminder timer, or push it back if it is running; None when
    reminders are off. The workflow is given the account, not its address: the email
    step reads that when the reminder is sent."""
    if not settings.cart_abandonment_enabled:
        return None
    return await CartReminderWorkflows.request_start(
        session,
        AbandonmentInput(
            cart_id=cart_id,
            user_id=user_id,
            delay_seconds=settings.cart_abandonment_delay_hours * 3600,
        ),
    )


async def cart_closed(session: AsyncSession, cart_id: str) -> None:
    """Checkout or an emptied cart: no reminder, not even one whose start is owed."""
    await CartReminderWorkflows.forget_owed_start(session, cart_id)


async def account_deleted(session: AsyncSession, user_id: str) -> str | None:
    """No reminder may reach an erased account: close its active cart. The cart's id,
    whose timer is to be stopped, if it had one."""
    cart_id = await CartRepository(session).close_active_for_user(user_id)
    if cart_id is not None:
        await cart_closed(session, cart_id)
    return cart_id
