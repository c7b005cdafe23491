"""How ``FulfillmentWorkflow``'s steps run (a staff step retries a few times, what cannot
be given up until it works), and the order's undoing once staff's cancel is accepted:
the order's own compensations, as ``OrderWorkflow`` runs them, then the customer's email.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.email import (
        NOTIFICATION_RETRY,
        NOTIFICATION_SCHEDULE_TO_CLOSE,
        NOTIFICATION_START_TO_CLOSE,
        EmailActivities,
        SendEmailInput,
    )
    from activities.orders import OrderActivities
    from activities.payments import PaymentActivities
    from models.orders import OrderStatus
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue
    from workflows.types.fulfillment_orders import FulfillmentOpened
    from workflows.types.orders import CloseInput, OrderRef

STEP_TIMEOUT = timedelta(seconds=30)
# Staff wait on an Update: a step retries a few times, then the Update answers.
STAFF_STEP_RETRY = RetryPolicy(
    maximum_attempts=5, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5)
)
# What cannot be given up (opening the fulfilment, a compensation) retries until it works.
FOREVER = RetryPolicy(
    maximum_attempts=0, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


async def run_step(
    activity: Callable[..., Awaitable[Any]],
    arg: BaseModel,
    summary: str,
    *,
    queue: TaskQueue = TaskQueue.ORDERS,
    forever: bool = False,
    local: bool = False,
) -> Any:
    """``local``: run as a local activity, in this worker (``FulfillmentWorkflow._step``
    says which steps, since ``LOCAL_FULFILLMENT_STEPS``)."""
    if local:
        return await workflow.execute_local_activity_method(
            activity,
            arg,
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=FOREVER if forever else STAFF_STEP_RETRY,
            local_retry_threshold=LOCAL_RETRY_THRESHOLD,
            summary=summary,
        )
    return await workflow.execute_activity_method(
        activity,
        arg,
        task_queue=str(queue),
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=FOREVER if forever else STAFF_STEP_RETRY,
        summary=summary,
    )


async def undo_order(opened: FulfillmentOpened, reason: str | None) -> None:
    """The order's own compensations (as ``OrderWorkflow`` runs them), then the email."""
    ref = OrderRef(order_id=opened.order_id)
    await run_step(OrderActivities.release_stock, ref, "give the sold stock back", forever=True)
    await run_step(
        PaymentActivities.void_or_refund,
        ref,
        "refund the captured payment",
        queue=TaskQueue.PAYMENTS,
        forever=True,
    )
    await run_step(
        OrderActivities.close,
        CloseInput(
            order_id=opened.order_id,
            status=OrderStatus.CANCELLED,
            failure_code=None,
            detail=reason or "cancelled before shipping",
        ),
        "mark the order cancelled",
        forever=True,
    )
    try:
        await workflow.execute_activity_method(
            EmailActivities.send_email,
            SendEmailInput(
                # The same key as OrderWorkflow's: an order is cancelled once.
                idempotency_key=f"order_cancelled:{opened.order_id}",
                template="order_cancelled",
                to=opened.email,
                context={
                    "name": opened.name,
                    "order_id": opened.order_id,
                    "total": opened.total,
                    "currency": opened.currency,
                    "reason": reason or "",
                },
            ),
            task_queue=str(TaskQueue.NOTIFICATIONS),
            start_to_close_timeout=NOTIFICATION_START_TO_CLOSE,
            schedule_to_close_timeout=NOTIFICATION_SCHEDULE_TO_CLOSE,
            retry_policy=NOTIFICATION_RETRY,
            summary="notify-cancelled: email order_cancelled",
        )
    except ActivityError as err:
        # A lost email never undoes a cancel; the email ledger shows what was not sent.
        workflow.logger.warning("order_cancelled email not sent: %s", err)
