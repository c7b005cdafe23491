"""Which workflows and activities run on which task queue.

Each later domain adds its workflows and activity classes here; ``shop worker`` and the
tests both build workers from this one table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.system import SystemActivities
from core.settings import Settings
from temporal.queues import TaskQueue
from workflows.system import StackProbeWorkflow


@dataclass(frozen=True)
class WorkerDeps:
    """What activity classes are built with. One set per worker process."""

    settings: Settings
    engine: AsyncEngine
    redis: Redis


@dataclass(frozen=True)
class QueueComponents:
    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]]


def components_for(queue: TaskQueue, deps: WorkerDeps) -> QueueComponents:
    workflows: list[type] = []
    system = SystemActivities(deps.engine, deps.redis, str(queue))
    activities: list[Callable[..., Any]] = [system.probe]
    if queue is TaskQueue.DEFAULT:
        workflows.append(StackProbeWorkflow)
    return QueueComponents(workflows=workflows, activities=activities)
