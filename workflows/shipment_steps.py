"""How ``ShipmentWorkflow``'s steps run: retried until they pass, our business errors
(a refused label) coming out as their ``ApplicationError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue

STEP_TIMEOUT = timedelta(seconds=60)
# Provider and database hiccups are retried until they pass; our business errors
# (a refused label) are non-retryable and reach the workflow.
RETRY = RetryPolicy(
    maximum_attempts=0, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


async def run_step(
    activity: Callable[..., Awaitable[Any]],
    arg: BaseModel,
    summary: str,
    *,
    cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    local: bool = False,
) -> Any:
    """Run one step; our business errors come out as their ``ApplicationError``.
    ``local``: run as a local activity, in this worker (``ShipmentWorkflow._step`` says
    which steps, since ``LOCAL_TRACKING_STEPS``)."""
    try:
        if local:
            return await workflow.execute_local_activity_method(
                activity,
                arg,
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=RETRY,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                cancellation_type=cancellation,
                summary=summary,
            )
        return await workflow.execute_activity_method(
            activity,
            arg,
            task_queue=str(TaskQueue.ORDERS),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=RETRY,
            cancellation_type=cancellation,
            summary=summary,
        )
    except ActivityError as err:
        if isinstance(err.cause, CancelledError):
            raise asyncio.CancelledError() from err
        if isinstance(err.cause, ApplicationError):
            raise err.cause from err
        raise
