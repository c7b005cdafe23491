"""A local step retried after a transient failure leaves nothing behind its worker.

SDK core keeps one start-to-close timer task per attempt of a local activity retried
inside the worker and aborts only the last one (temporalio/sdk-rust#1454). A stale timer
that fires once its worker has shut down finds the local-activity channel gone and
panics on a Tokio thread ("receive half not dropped"); one that fires while the worker
runs can time out a later attempt early. Our local steps therefore back off on workflow
timers (``temporal.local_retries``), where each attempt's timers go with the attempt.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
from tests.workflows.order_standins import RESERVE, OrderStandIns, flaky, start_order

STEP_TIMEOUT_SECONDS = 2.0


async def test_a_retried_local_step_leaves_no_timer_to_fire_after_its_worker_stops(
    time_skipping_env: WorkflowEnvironment, capfd: pytest.CaptureFixture[str]
) -> None:
    standins = OrderStandIns()
    order = standins.order({RESERVE: flaky(1)})
    async with standins.running(time_skipping_env.client):
        handle = await start_order(
            time_skipping_env.client,
            order.order_id,
            steps={"timeout_seconds": STEP_TIMEOUT_SECONDS},
        )
        view = await handle.result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    assert order.ran.count(RESERVE) == 2
    # The worker has shut down; the first attempt's start-to-close timeout now passes.
    await asyncio.sleep(STEP_TIMEOUT_SECONDS + 1)
    assert "panicked" not in capfd.readouterr().err
