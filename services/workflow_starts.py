"""Starting workflows reliably: record the start with the change, start after commit.

``request`` adds a row in the caller's transaction. After the commit, ``start`` tries at
once; if Temporal is unreachable the row stays pending and ``relay_pending`` (run every
minute by a Temporal Schedule) starts it later. A workflow id that already exists counts
as started, so a start is never doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.db import SessionFactory
from models.base import utcnow
from models.workflow_starts import WorkflowStart

log = logging.getLogger(__name__)


class WorkflowStartRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: WorkflowStart) -> None:
        self.session.add(row)

    async def pending(self, older_than: timedelta, limit: int) -> list[WorkflowStart]:
        cutoff = utcnow() - older_than
        result = await self.session.exec(
            select(WorkflowStart)
            .where(col(WorkflowStart.started_at).is_(None), WorkflowStart.created_at <= cutoff)
            .order_by(col(WorkflowStart.created_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(result.all())

    async def owed(self, workflow_id: str) -> WorkflowStart | None:
        """The start of ``workflow_id`` if it is recorded and not yet done."""
        result = await self.session.exec(
            select(WorkflowStart).where(
                WorkflowStart.workflow_id == workflow_id, col(WorkflowStart.started_at).is_(None)
            )
        )
        return result.first()

    async def mark_started(self, start_id: str) -> None:
        await self.session.exec(
            update(WorkflowStart)
            .where(col(WorkflowStart.id) == start_id)
            .values(started_at=utcnow())
        )

    async def mark_failed(self, start_id: str, error: str) -> None:
        await self.session.exec(
            update(WorkflowStart)
            .where(col(WorkflowStart.id) == start_id)
            .values(attempts=WorkflowStart.attempts + 1, last_error=error[:2000])
        )


def request(
    session: AsyncSession,
    *,
    workflow_type: str,
    workflow_id: str,
    task_queue: str,
    input: BaseModel,
) -> WorkflowStart:
    row = WorkflowStart(
        workflow_type=workflow_type,
        workflow_id=workflow_id,
        task_queue=task_queue,
        input=input.model_dump(mode="json"),
    )
    WorkflowStartRepository(session).add(row)
    return row


async def _start(client: Client, row: WorkflowStart) -> None:
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            row.workflow_type,
            # The stored JSON input; the workflow parses it into its input model.
            row.input,
            id=row.workflow_id,
            task_queue=row.task_queue,
            # A finished workflow with this id means the work was done: never redo it.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )


async def start(
    connect: Callable[[], Awaitable[Client]],
    sessions: SessionFactory,
    row: WorkflowStart,
    *,
    wait_seconds: float,
) -> bool:
    """Try to start ``row`` now (within ``wait_seconds`` for connecting and again for
    starting); True if it is started or already was. On failure the row records why
    and stays pending for the relay."""
    try:
        client = await asyncio.wait_for(connect(), wait_seconds)
        await asyncio.wait_for(_start(client, row), wait_seconds)
    except Exception as exc:
        log.warning(
            "workflow start deferred to the relay",
            extra={"workflow_id": row.workflow_id, "error": repr(exc)[:200]},
        )
        async with sessions() as session, session.begin():
            await WorkflowStartRepository(session).mark_failed(row.id, repr(exc))
        return False
    async with sessions() as session, session.begin():
        await WorkflowStartRepository(session).mark_started(row.id)
    return True


async def start_owed(
    connect: Callable[[], Awaitable[Client]],
    sessions: SessionFactory,
    workflow_id: str,
    *,
    wait_seconds: float,
) -> bool:
    """Start ``workflow_id`` now if its start is still owed (e.g. Temporal was away when
    it was requested); False if there is no such pending start or it cannot start yet."""
    async with sessions() as session:
        row = await WorkflowStartRepository(session).owed(workflow_id)
    if row is None:
        return False
    return await start(connect, sessions, row, wait_seconds=wait_seconds)


async def relay_pending(
    client: Client, sessions: SessionFactory, *, older_than: timedelta, limit: int = 100
) -> int:
    """Start pending rows older than ``older_than`` (younger ones are still being started
    by the request that wrote them). Returns how many were started."""
    started = 0
    async with sessions() as session, session.begin():
        repo = WorkflowStartRepository(session)
        for row in await repo.pending(older_than, limit):
            try:
                await _start(client, row)
            except Exception as exc:
                await repo.mark_failed(row.id, str(exc))
                continue
            await repo.mark_started(row.id)
            started += 1
    return started
