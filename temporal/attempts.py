"""Retry budgets that count an activity's own failures, never attempts lost with a worker.

Temporal counts every attempt toward ``maximum_attempts``, including one whose worker was
SIGKILLed: a step allowed 3 attempts could be failed by two crashes and one provider
hiccup. ``StepAttempts`` (installed on every worker) runs differently each activity that
is scheduled with a ``heartbeat_timeout``:

- while an attempt runs, its worker heartbeats, so a dead worker is noticed after the
  heartbeat timeout (seconds) and the attempt is retried on another worker;
- with a finite ``maximum_attempts`` as well, that number becomes the activity's *own*
  budget: the workflow side moves it into a header and schedules the activity with
  unlimited attempts (backoff unchanged). An attempt that fails by itself (a retryable
  error, or running past its own deadline, ``REPORT_GRACE`` inside the start-to-close
  timeout) counts one failure in its heartbeat details (recorded before it reports),
  which Temporal hands to the next attempt; the failure that uses up the budget is
  raised non-retryable, unchanged otherwise, so the workflow sees what it saw before.
  An attempt lost with its worker (a heartbeat or start-to-close timeout: it never
  reported back) is not counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import AsyncActivityCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

log = logging.getLogger(__name__)
BUDGET_HEADER = "shopweave-attempts"
# An attempt stops itself this long before its start-to-close timeout, so that running
# too long is reported (and counted) by the attempt rather than timed out by Temporal.
REPORT_GRACE = timedelta(seconds=2)
# How long a failing attempt waits before repeating the heartbeat that records its count.
_RESEND_AFTER = 0.5


def own_deadline(start_to_close: timedelta) -> timedelta:
    return max(start_to_close - REPORT_GRACE, start_to_close / 2)


def failures_so_far(details: Sequence[Any]) -> int:
    """The failures counted by earlier attempts (their last heartbeat's details)."""
    first = details[0] if details else 0
    return first if isinstance(first, int) else 0


class StepAttempts(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Attempt(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Workflow


class _Workflow(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Scheduling(outbound))


class _Scheduling(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        policy = input.retry_policy
        if input.heartbeat_timeout and policy is not None and policy.maximum_attempts > 0:
            budget = workflow.payload_converter().to_payload(policy.maximum_attempts)
            input.headers = {**input.headers, BUDGET_HEADER: budget}
            input.retry_policy = dataclasses.replace(policy, maximum_attempts=0)
        return super().start_activity(input)


class _OwnTimeout(Exception):
    pass


class _Attempt(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = outbound
        super().init(outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.heartbeat_timeout is None or info.is_local:
            return await super().execute_activity(input)
        budget = _budget(input.headers)
        failures = failures_so_far(info.heartbeat_details)
        beating = asyncio.create_task(self._beat(info.heartbeat_timeout, failures))
        try:
            if budget is None:
                return await super().execute_activity(input)
            return await self._within_deadline(input, info.start_to_close_timeout)
        except Exception as exc:
            if budget is None or not _retryable(exc):
                raise
            beating.cancel()
            failures += 1
            await self._record(failures)
            if failures >= budget:
                raise _final(exc, failures) from exc
            if isinstance(exc, _OwnTimeout):
                raise _timed_out(exc, retryable=True) from exc
            raise
        finally:
            beating.cancel()

    async def _within_deadline(
        self, input: ExecuteActivityInput, start_to_close: timedelta | None
    ) -> Any:
        if start_to_close is None:
            return await super().execute_activity(input)
        limit = own_deadline(start_to_close)
        try:
            async with asyncio.timeout(limit.total_seconds()) as deadline:
                return await super().execute_activity(input)
        except TimeoutError as exc:
            if deadline.expired():
                raise _OwnTimeout(f"the attempt ran past its own deadline ({limit})") from exc
            raise

    async def _record(self, failures: int) -> None:
        """Leave the count where the next attempt finds it, *before* this attempt fails.

        The SDK sends heartbeats in the background (one could arrive after the failure
        and be refused), and its failure report carries no heartbeat details, so the count
        goes in a heartbeat of our own, awaited. The SDK's pending heartbeat is set to
        the same count, so whichever arrives last agrees."""
        self._outbound.heartbeat(failures)
        info = activity.info()
        try:
            handle = activity.client().get_async_activity_handle(task_token=info.task_token)
            await handle.heartbeat(failures)
            # A background heartbeat with the old count may have been in flight and land
            # after ours (the last one wins): say it again once that one has landed.
            await asyncio.sleep(_RESEND_AFTER)
            await handle.heartbeat(failures)
        except AsyncActivityCancelledError:
            pass  # recorded all the same; the cancellation reaches the activity anyway
        except Exception as exc:
            # Most likely this attempt timed out already: its failure will not count.
            log.warning(
                "attempt %d of %s could not record its failure: %r",
                info.attempt,
                info.activity_type,
                exc,
            )

    async def _beat(self, heartbeat_timeout: timedelta, failures: int) -> None:
        """Heartbeat while the attempt runs (the SDK sends at most one per 0.8 timeout).

        The first one a quarter of the timeout in, not at once: Temporal needs one only
        before the timeout, and the count it carries is already the server's (the last
        recorded details pass to the next attempt), so the short attempts of a normal
        checkout (authorise, capture, email) send none: a server round trip and a
        history-state write fewer each."""
        while True:
            await asyncio.sleep(heartbeat_timeout.total_seconds() / 4)
            self._outbound.heartbeat(failures)


def _budget(headers: Mapping[str, Payload]) -> int | None:
    payload = headers.get(BUDGET_HEADER)
    if payload is None:
        return None
    return int(activity.payload_converter().from_payload(payload, int))


def _retryable(exc: Exception) -> bool:
    return not (isinstance(exc, ApplicationError) and exc.non_retryable)


def _timed_out(exc: _OwnTimeout, *, retryable: bool) -> ApplicationError:
    return ApplicationError(str(exc), type="AttemptTimedOut", non_retryable=not retryable)


def _final(exc: Exception, failures: int) -> ApplicationError:
    """The failure that used up the budget, as the workflow would have seen it."""
    if isinstance(exc, _OwnTimeout):
        return _timed_out(exc, retryable=False)
    if isinstance(exc, ApplicationError):
        return ApplicationError(
            exc.message,
            *exc.details,
            type=exc.type,
            non_retryable=True,
            category=exc.category,
        )
    return ApplicationError(
        f"{exc} (failed {failures} times)", type=type(exc).__name__, non_retryable=True
    )
