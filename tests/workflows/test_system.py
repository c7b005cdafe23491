from __future__ import annotations

import os
from uuid import uuid4

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.system import SystemActivities
from cli.stack.process import free_port
from core.db import create_engine
from core.settings import Settings
from tests.stack import suite_worker
from workflows.system import StackProbeInput, StackProbeWorkflow


def _worker(env: WorkflowEnvironment, queue: str, engine: AsyncEngine, redis: Redis) -> Worker:
    activities = SystemActivities(engine, redis, queue)
    workflows = [StackProbeWorkflow] if queue.endswith("default") else []
    return suite_worker(
        env.client, task_queue=queue, workflows=workflows, activities=[activities.probe]
    )


async def test_every_served_queue_reports_its_worker(
    time_skipping_env: WorkflowEnvironment, engine: AsyncEngine, redis: Redis
) -> None:
    prefix = uuid4().hex[:6]
    queues = [f"{prefix}-{q}" for q in ("orders", "payments", "default")]
    workers = [_worker(time_skipping_env, q, engine, redis) for q in queues]
    async with workers[0], workers[1], workers[2]:
        result = await time_skipping_env.client.execute_workflow(
            StackProbeWorkflow.run,
            StackProbeInput(queues=queues),
            id=f"probe-{prefix}",
            task_queue=queues[-1],
        )
    assert result.ok
    assert [q.queue for q in result.queues] == queues
    for probe in result.queues:
        assert probe.result is not None
        assert probe.result.pid == os.getpid()
        assert probe.result.database
        assert probe.result.redis


async def test_a_queue_without_a_worker_is_reported_not_awaited_forever(
    time_skipping_env: WorkflowEnvironment, engine: AsyncEngine, redis: Redis
) -> None:
    prefix = uuid4().hex[:6]
    default = f"{prefix}-default"
    unserved = f"{prefix}-notifications"
    async with _worker(time_skipping_env, default, engine, redis):
        result = await time_skipping_env.client.execute_workflow(
            StackProbeWorkflow.run,
            StackProbeInput(queues=[default, unserved], pickup_timeout_seconds=2),
            id=f"probe-{prefix}",
            task_queue=default,
        )
    assert not result.ok
    by_queue = {q.queue: q for q in result.queues}
    assert by_queue[default].ok
    assert not by_queue[unserved].ok
    assert by_queue[unserved].error is not None
    assert by_queue[unserved].error == "no worker picked the probe up within 2s"


async def test_a_worker_that_cannot_reach_the_database_fails_its_probe(
    time_skipping_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    dead = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"}
    )
    dead_engine = create_engine(dead)
    prefix = uuid4().hex[:6]
    default = f"{prefix}-default"
    try:
        async with _worker(time_skipping_env, default, dead_engine, redis):
            result = await time_skipping_env.client.execute_workflow(
                StackProbeWorkflow.run,
                StackProbeInput(queues=[default]),
                id=f"probe-{prefix}",
                task_queue=default,
            )
    finally:
        await dead_engine.dispose()
    assert not result.ok
    assert result.queues[0].error
