"""Retry budgets count an activity's own failures; attempts lost with a worker are free.

A lost worker is played by an attempt that blocks its worker's event loop past the
heartbeat timeout (no heartbeat leaves the process, as with a SIGKILLed one): Temporal
times it out and retries it, and its failure, reported late, is not counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    Interceptor,
    UnsandboxedWorkflowRunner,
)

from temporal.attempts import StepAttempts, failures_so_far, own_deadline
from tests.stack import suite_worker

HEARTBEAT = timedelta(seconds=1)


class Plan(BaseModel):
    attempts: int = 3
    start_to_close_seconds: float = 10
    heartbeat: bool = True
    backoff_seconds: float = 0.1


class Script:
    """What each attempt does, in order: ``lose``, ``fail``, ``hang``, ``bug`` or ``ok``."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.seen: list[tuple[int, int]] = []  # (attempt, failures counted before it)

    @activity.defn(name="scripted")
    async def run(self) -> str:
        info = activity.info()
        self.seen.append((info.attempt, failures_so_far(info.heartbeat_details)))
        step = self.steps[min(info.attempt, len(self.steps)) - 1]
        if step == "lose":
            # The whole worker stands still, as a dead one would.
            time.sleep(HEARTBEAT.total_seconds() * 2.5)  # noqa: ASYNC251
            raise ApplicationError("too late to count", type="provider_down")
        if step == "fail":
            raise ApplicationError("the provider answered 500", {"x": 1}, type="provider_down")
        if step == "hang":
            await asyncio.sleep(3600)
        if step == "bug":
            raise ValueError("a bug")
        if step in ("quick", "slow"):
            # An attempt that waits on I/O, shortly or for most of a heartbeat timeout.
            await asyncio.sleep(0.01 if step == "quick" else HEARTBEAT.total_seconds() * 0.75)
        if step == "declined":
            raise ApplicationError("declined", type="payment_declined", non_retryable=True)
        return f"done on attempt {info.attempt}"


@workflow.defn(name="ScriptedStep", sandboxed=False)
class ScriptedStep:
    @workflow.run
    async def run(self, plan: Plan) -> str:
        return str(
            await workflow.execute_activity(
                "scripted",
                start_to_close_timeout=timedelta(seconds=plan.start_to_close_seconds),
                heartbeat_timeout=HEARTBEAT if plan.heartbeat else None,
                retry_policy=RetryPolicy(
                    maximum_attempts=plan.attempts,
                    initial_interval=timedelta(seconds=plan.backoff_seconds),
                    maximum_interval=timedelta(seconds=max(plan.backoff_seconds, 0.2)),
                ),
            )
        )


@pytest.fixture
def queue() -> str:
    return f"attempts-{uuid4().hex[:8]}"


async def _run(
    env: WorkflowEnvironment,
    queue: str,
    script: Script,
    plan: Plan,
    outer: Sequence[Interceptor] = (),
) -> str:
    async with suite_worker(
        env.client,
        task_queue=queue,
        workflows=[ScriptedStep],
        activities=[script.run],
        interceptors=[*outer, StepAttempts()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        return str(
            await env.client.execute_workflow(
                ScriptedStep.run, plan, id=f"scripted-{uuid4().hex}", task_queue=queue
            )
        )


def _cause(err: WorkflowFailureError) -> ApplicationError:
    activity_error = err.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    return cause


def test_an_attempt_stops_itself_a_little_inside_its_start_to_close_timeout() -> None:
    assert own_deadline(timedelta(seconds=32)) == timedelta(seconds=30)
    assert own_deadline(timedelta(seconds=3)) == timedelta(seconds=1.5)


async def test_the_budget_is_used_up_by_the_steps_own_failures_only(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    script = Script(["lose", "fail", "lose", "fail", "ok"])
    # A lost attempt stalls this worker for 2.5 heartbeat timeouts; the retry must come
    # after that (Temporal times the attempt out after one), or the stalled worker would
    # lose the retry too.
    plan = Plan(attempts=3, backoff_seconds=HEARTBEAT.total_seconds() * 2.5)
    # Temporal alone would have given up on attempt 3: two attempts lost, one failure.
    assert await _run(temporal_env, queue, script, plan) == "done on attempt 5"
    assert script.seen == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2)]


async def test_a_step_failing_by_itself_fails_after_its_budget_with_its_own_error(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    script = Script(["fail"])
    with pytest.raises(WorkflowFailureError) as failed:
        await _run(temporal_env, queue, script, Plan(attempts=3))
    cause = _cause(failed.value)
    assert (cause.type, cause.message, cause.non_retryable) == (
        "provider_down",
        "the provider answered 500",
        True,
    )
    assert list(cause.details) == [{"x": 1}]
    assert script.seen == [(1, 0), (2, 1), (3, 2)]


async def test_a_bug_is_counted_like_any_failure(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    script = Script(["bug"])
    with pytest.raises(WorkflowFailureError) as failed:
        await _run(temporal_env, queue, script, Plan(attempts=2))
    assert _cause(failed.value).type == "ValueError"
    assert len(script.seen) == 2


async def test_an_attempt_running_past_its_deadline_counts(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    script = Script(["hang", "ok"])
    plan = Plan(attempts=2, start_to_close_seconds=3)
    assert await _run(temporal_env, queue, script, plan) == "done on attempt 2"
    assert script.seen == [(1, 0), (2, 1)]

    hung = Script(["hang"])
    with pytest.raises(WorkflowFailureError) as failed:
        await _run(temporal_env, f"{queue}-2", hung, plan)
    # The last attempt stopped itself inside its deadline (Temporal's own timeout would
    # be a TimeoutError, not our ApplicationError), and the two used up the budget.
    assert _cause(failed.value).type == "AttemptTimedOut"
    assert hung.seen == [(1, 0), (2, 1)]


async def test_a_business_error_is_final_at_once(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    script = Script(["declined"])
    with pytest.raises(WorkflowFailureError) as failed:
        await _run(temporal_env, queue, script, Plan(attempts=3))
    assert _cause(failed.value).type == "payment_declined"
    assert script.seen == [(1, 0)]


async def test_without_a_heartbeat_timeout_temporal_counts_as_usual(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    script = Script(["fail"])
    with pytest.raises(WorkflowFailureError) as failed:
        await _run(temporal_env, queue, script, Plan(attempts=2, heartbeat=False))
    cause = _cause(failed.value)
    assert (cause.type, cause.non_retryable) == ("provider_down", False)
    assert script.seen == [(1, 0), (2, 0)]


class Heartbeats(Interceptor):
    """Outside ``StepAttempts``: records every heartbeat an activity sends, its own too."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RecordingInbound(next, self.sent)


class _RecordingInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, sent: list[tuple[Any, ...]]) -> None:
        super().__init__(next)
        self._sent = sent

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_RecordingOutbound(outbound, self._sent))


class _RecordingOutbound(ActivityOutboundInterceptor):
    def __init__(self, next: ActivityOutboundInterceptor, sent: list[tuple[Any, ...]]) -> None:
        super().__init__(next)
        self._sent = sent

    def heartbeat(self, *details: Any) -> None:
        self._sent.append(details)
        super().heartbeat(*details)


async def test_a_short_attempt_sends_no_heartbeat_a_long_one_does(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    quick, heartbeats = Script(["quick"]), Heartbeats()
    assert await _run(temporal_env, queue, quick, Plan(), [heartbeats]) == "done on attempt 1"
    assert heartbeats.sent == []  # Temporal needs none before the heartbeat timeout

    slow, heartbeats = Script(["slow"]), Heartbeats()
    plan = Plan()
    assert await _run(temporal_env, f"{queue}-2", slow, plan, [heartbeats]) == "done on attempt 1"
    assert heartbeats.sent  # within its timeout, with the count so far
    assert set(heartbeats.sent) == {(0,)}
