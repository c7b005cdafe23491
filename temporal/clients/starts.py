"""Starting the recorded ``workflow_starts`` rows: the one way any workflow is started.

The request that wrote a row starts it after its commit (``WorkflowStarts.start``); if
Temporal is unreachable the row stays pending with the error, and ``relay_pending`` (run
every minute by ``WorkflowStartRelayWorkflow``) starts it later.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.db import SessionFactory
from core.telemetry import in_trace_of
from models.workflow_starts import WorkflowStart
from services.workflow_starts import WorkflowStartRepository
from temporal.clients.connection import CALL_SECONDS, TemporalConnection, call

log = logging.getLogger(__name__)


async def start_row(client: Client, row: WorkflowStart, *, again_if_closed: bool = False) -> None:
    """Start the row's workflow; one that already exists counts as started. A
    ``signal_only`` row signals the running workflow, its input the signal's argument
    (none if it is ``{}``); one that has ended (or never ran) has nobody to tell, and the
    row is done all the same.

    ``again_if_closed``: a *closed* run with the id does not count, a new run starts (a
    running one still does). For a caller that knows no earlier run can have done the
    work: the work's row is new in its transaction, and a run only acts on a committed
    one."""
    if row.signal_only:
        assert row.start_signal is not None
        try:
            await client.get_workflow_handle(row.workflow_id).signal(
                row.start_signal, args=[row.input] if row.input else []
            )
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            log.info(
                "owed signal dropped: the workflow has ended",
                extra={"workflow_id": row.workflow_id, "signal": row.start_signal},
            )
        return
    if row.start_signal is None:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client.start_workflow(
                row.workflow_type,
                # The stored JSON input; the workflow parses it into its input model.
                row.input,
                id=row.workflow_id,
                task_queue=row.task_queue,
                # A finished workflow with this id means the work was done: never redo it
                # (unless the caller knows it was not).
                id_reuse_policy=(
                    WorkflowIDReusePolicy.ALLOW_DUPLICATE
                    if again_if_closed
                    else WorkflowIDReusePolicy.REJECT_DUPLICATE
                ),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        return
    await client.start_workflow(
        row.workflow_type,
        row.input,
        id=row.workflow_id,
        task_queue=row.task_queue,
        # Signals the running workflow, or starts one that receives the signal first.
        start_signal=row.start_signal,
        # After the last run finished (e.g. a reminder went out), a change starts anew.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


class WorkflowStarts:
    def __init__(
        self,
        connection: TemporalConnection,
        sessions: SessionFactory,
        *,
        call_seconds: float = CALL_SECONDS,  # a batch job can afford to wait longer
    ) -> None:
        self._connection = connection
        self._sessions = sessions
        self._call_seconds = call_seconds

    async def start(self, row: WorkflowStart) -> bool:
        """Start ``row`` now, after its transaction committed; True if it is started or
        already was. On failure the row records why and stays pending for the relay."""
        try:
            client = await self._connection.client()
            await call(
                start_row(client, row),
                what=f"workflow {row.workflow_id}",
                seconds=self._call_seconds,
            )
        except Exception as exc:
            log.warning(
                "workflow start deferred to the relay",
                extra={"workflow_id": row.workflow_id, "error": repr(exc.__cause__ or exc)[:200]},
            )
            async with self._sessions() as session, session.begin():
                await WorkflowStartRepository(session).mark_failed(
                    row.id, repr(exc.__cause__ or exc)
                )
            return False
        async with self._sessions() as session, session.begin():
            await WorkflowStartRepository(session).mark_started(row.id, requested_at=row.created_at)
        return True

    async def start_owed(self, workflow_id: str) -> bool:
        """Start ``workflow_id`` now if its start is still owed (e.g. Temporal was away
        when it was requested); False if no start is owed or it cannot start yet."""
        async with self._sessions() as session:
            row = await WorkflowStartRepository(session).owed(workflow_id)
        if row is None:
            return False
        return await self.start(row)


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
                # In the trace that asked for it: its StartWorkflow span (and so the
                # workflow's) is a child of the request's or activity's span.
                with in_trace_of(row.traceparent):
                    await start_row(client, row)
            except Exception as exc:
                await repo.mark_failed(row.id, str(exc))
                continue
            await repo.mark_started(row.id)
            started += 1
    return started
