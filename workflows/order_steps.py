"""How ``OrderWorkflow``'s steps run: a step (a local or a remote activity, with the
order's step policy; its failure as the order's failure code), a compensation (retried
until it succeeds), an email to the customer (never a reason to undo the order), and an
undo that a cancel from Temporal does not cut short.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.email import (
        NOTIFICATION_RETRY,
        NOTIFICATION_SCHEDULE_TO_CLOSE,
        NOTIFICATION_START_TO_CLOSE,
        EmailActivities,
        SendEmailInput,
    )
    from models.orders import OrderSnapshot
    from temporal.attempts import REPORT_GRACE
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue
    from workflows.types.orders import StepPolicy

# Our error codes are snake_case; a Python exception's class name (a bug) is not.
_OUR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


class OrderFailed(Exception):
    """Ends the happy path; carries the failure code the order will show."""

    def __init__(self, code: str, detail: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        # The business error's details, e.g. ``unavailableItems`` for out_of_stock.
        self.data = data or {}


class OrderCancelled(Exception):
    pass


def failure(err: FailureError, step: str) -> OrderFailed:
    """Our errors keep their stable code and message; anything else (a bug, a timeout)
    becomes ``{step}_failed`` without internals, which stay in the workflow history.

    A remote activity's failure arrives as an ``ActivityError`` around its cause; a local
    activity's arrives as the cause itself."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type and _OUR_CODE.match(cause.type):
        first = cause.details[0] if cause.details else None
        data = {k: v for k, v in first.items() if v is not None} if isinstance(first, dict) else {}
        return OrderFailed(cause.type, f"{step}: {cause.message}", data)
    return OrderFailed(
        f"{step.replace('-', '_')}_failed", f"{step}: could not complete; it was retried"
    )


Compensation = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class OrderSteps:
    """The steps of one order's run: ``policy`` is its input's, ``local_steps`` whether
    its database steps run as local activities (since ``LOCAL_DATABASE_STEPS``)."""

    order_id: str
    policy: StepPolicy
    local_steps: bool

    async def run(
        self,
        name: str,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        queue: TaskQueue = TaskQueue.ORDERS,
        forever: bool = False,
        local: bool = False,
    ) -> Any:
        policy = self.policy
        try:
            if local and self.local_steps:
                return await workflow.execute_local_activity_method(
                    activity,
                    arg,
                    start_to_close_timeout=timedelta(seconds=policy.timeout_seconds),
                    retry_policy=RetryPolicy(
                        maximum_attempts=0 if forever else policy.attempts,
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=10),
                    ),
                    local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                    summary=f"{name}: {summary}",
                )
            return await workflow.execute_activity_method(
                activity,
                arg,
                task_queue=str(queue),
                # The attempt stops itself at the step's timeout (and counts it); past
                # the grace, or without heartbeats, its worker is taken for lost.
                start_to_close_timeout=timedelta(seconds=policy.timeout_seconds) + REPORT_GRACE,
                heartbeat_timeout=timedelta(seconds=policy.heartbeat_seconds),
                retry_policy=RetryPolicy(
                    maximum_attempts=0 if forever else policy.attempts,
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=10),
                ),
                summary=f"{name}: {summary}",
            )
        except FailureError as err:
            if not isinstance(err, ActivityError) and not (local and self.local_steps):
                raise
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                # The workflow was cancelled from Temporal while this step ran: the order
                # is undone as cancelled, not failed (see OrderWorkflow.run).
                raise asyncio.CancelledError() from err
            raise failure(err, name) from err

    async def compensate(
        self,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        queue: TaskQueue = TaskQueue.ORDERS,
    ) -> Any:
        """A compensation is retried until it succeeds (an operator can see it retrying)."""
        return await workflow.execute_activity_method(
            activity,
            arg,
            task_queue=str(queue),
            start_to_close_timeout=timedelta(seconds=self.policy.timeout_seconds),
            heartbeat_timeout=timedelta(seconds=self.policy.heartbeat_seconds),
            retry_policy=RetryPolicy(
                maximum_attempts=0,
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(minutes=1),
            ),
            summary=f"compensate: {summary}",
        )

    async def send_email(
        self,
        snapshot: OrderSnapshot | None,
        template: str,
        name: str,
        *,
        reason: str | None = None,
    ) -> None:
        if snapshot is None:
            return  # failed before we knew whom to write to (and with nothing to say)
        try:
            await self._email(snapshot, template, name, reason)
        except ActivityError as err:
            # A lost email never undoes an order; the ledger shows what was not sent.
            workflow.logger.warning("email %s for %s not sent: %s", template, self.order_id, err)

    async def _email(
        self, snapshot: OrderSnapshot, template: str, name: str, reason: str | None
    ) -> None:
        await workflow.execute_activity_method(
            EmailActivities.send_email,
            SendEmailInput(
                idempotency_key=f"{template}:{self.order_id}",
                template=template,
                to=snapshot.email,
                context={
                    "name": snapshot.name,
                    "order_id": self.order_id,
                    "total": snapshot.total,
                    "currency": snapshot.currency,
                    "lines": [ln.model_dump() for ln in snapshot.lines],
                    # The receipt's other rows, so that its figures add up.
                    "subtotal": snapshot.subtotal,
                    "automatic_discounts": snapshot.automatic_discounts,
                    "coupon_code": snapshot.coupon_code,
                    "coupon_discount": snapshot.coupon_discount,
                    "shipping": snapshot.shipping,
                    "tax": snapshot.tax,
                    "reason": reason or "",
                },
            ),
            task_queue=str(TaskQueue.NOTIFICATIONS),
            start_to_close_timeout=NOTIFICATION_START_TO_CLOSE,
            heartbeat_timeout=timedelta(seconds=self.policy.heartbeat_seconds),
            schedule_to_close_timeout=NOTIFICATION_SCHEDULE_TO_CLOSE,
            retry_policy=NOTIFICATION_RETRY,
            summary=f"{name}: email {template}",
        )


async def despite_cancel(undo: Awaitable[None]) -> None:
    """Run ``undo`` to its end even if the workflow is cancelled from Temporal meanwhile.

    A cancel from Temporal cancels the workflow's main task where it waits: the running
    compensation's activity is told to stop and the rest never run. The undo runs in a
    task of its own, which that cancel does not reach (the SDK cancels the main task
    only); the main task waits for it again after a cancel. The one cancel Temporal
    delivers is then spent, and the workflow ends as the undo does."""
    task = asyncio.ensure_future(undo)
    while True:
        try:
            await asyncio.shield(task)
            return
        except asyncio.CancelledError:
            if task.done():
                raise
            workflow.logger.info("cancelled from Temporal while undoing: the undo goes on")
