"""AnalyticsRollupWorkflow on the time-skipping server with a stand-in activity: it
returns what the refresh did, and rides out transient failures by retrying (the real
activity against the database: tests/analytics/test_rollups.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from tests.stack import suite_worker
from workflows.maintenance import AnalyticsRollupWorkflow
from workflows.types.analytics import RollupInput, RollupResult

WATERMARK = datetime(2026, 12, 4, 12, tzinfo=UTC)


def refresh_failing(times: int) -> tuple[list[int], Callable[..., Any]]:
    calls: list[int] = []

    @activity.defn(name="analytics.refresh_rollups")
    async def refresh_rollups(input: RollupInput) -> RollupResult:
        calls.append(activity.info().attempt)
        if len(calls) <= times:
            raise RuntimeError("database restarting")
        return RollupResult(hours=3, refund_hours=1, watermark=WATERMARK)

    return calls, refresh_rollups


async def _run(env: WorkflowEnvironment, standin: Callable[..., Any]) -> RollupResult:
    queue = f"rollup-{uuid.uuid4()}"
    async with suite_worker(
        env.client, task_queue=queue, workflows=[AnalyticsRollupWorkflow], activities=[standin]
    ):
        result: RollupResult = await env.client.execute_workflow(
            AnalyticsRollupWorkflow.run,
            RollupInput(),
            id=f"analytics-rollup-{uuid.uuid4()}",
            task_queue=queue,
        )
        return result


async def test_the_workflow_returns_what_the_refresh_did(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    calls, standin = refresh_failing(0)
    result = await _run(time_skipping_env, standin)
    assert result == RollupResult(hours=3, refund_hours=1, watermark=WATERMARK)
    assert calls == [1]


async def test_a_transient_failure_is_retried(time_skipping_env: WorkflowEnvironment) -> None:
    calls, standin = refresh_failing(2)
    result = await _run(time_skipping_env, standin)
    assert result.hours == 3
    assert calls == [1, 2, 3]
