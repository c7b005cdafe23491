"""``ReturnWorkflows``: the one way the API talks to ``ReturnWorkflow`` (start, the staff
Updates approve/decline/receive, the ``status`` query)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError

from core.errors import TemporalUnavailable
from models.workflow_starts import WorkflowStart
from services import workflow_starts
from temporal.clients.connection import (
    TemporalConnection,
    WorkflowNotFound,
    WorkflowRefused,
    call,
)
from temporal.clients.starts import WorkflowStarts
from temporal.queues import TaskQueue
from workflows.types.fulfillment import RETURN_WORKFLOW, STATUS_QUERY, return_workflow_id
from workflows.types.returns import (
    APPROVE_UPDATE,
    DECLINE_UPDATE,
    RECEIVE_UPDATE,
    ApproveRequest,
    DeclineRequest,
    ReceiveRequest,
    ReturnInput,
    ReturnView,
)

# How long a staff action waits for the workflow to carry it out (a label bought, a
# refund made) before answering 202 with the return as it stands.
ACTION_SECONDS = 10.0


class ReturnWorkflows:
    def __init__(self, connection: TemporalConnection, starts: WorkflowStarts) -> None:
        self._connection = connection
        self._starts = starts

    @staticmethod
    def request_start(session: AsyncSession, input: ReturnInput) -> WorkflowStart:
        """Record the return's start in the request's transaction."""
        return workflow_starts.request(
            session,
            workflow_type=RETURN_WORKFLOW,
            workflow_id=return_workflow_id(input.return_id),
            task_queue=str(TaskQueue.ORDERS),
            input=input,
        )

    async def _handle(self, return_id: str) -> WorkflowHandle[Any, ReturnView]:
        client = await self._connection.client()
        return client.get_workflow_handle(return_workflow_id(return_id), result_type=ReturnView)

    async def status(self, return_id: str) -> ReturnView:
        handle = await self._handle(return_id)
        return await call(
            handle.query(STATUS_QUERY, result_type=ReturnView), what=f"return {return_id}"
        )

    async def approve(self, return_id: str, request: ApproveRequest) -> bool:
        return await self._update(return_id, APPROVE_UPDATE, request)

    async def decline(self, return_id: str, request: DeclineRequest) -> bool:
        return await self._update(return_id, DECLINE_UPDATE, request)

    async def receive(self, return_id: str, request: ReceiveRequest) -> bool:
        return await self._update(return_id, RECEIVE_UPDATE, request)

    async def _update(self, return_id: str, name: str, request: BaseModel) -> bool:
        """Send a staff Update; True when the workflow carried it out within
        ``ACTION_SECONDS``, False when it accepted it and is still at work. Raises
        ``WorkflowRefused`` with the validator's code (e.g. ``return_not_requested``)."""
        handle = await self._handle(return_id)
        what = f"return {return_id}"
        for attempt in range(2):
            try:
                update = await call(
                    handle.start_update(
                        name,
                        request,
                        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                        result_type=ReturnView,
                    ),
                    what=what,
                )
            except WorkflowNotFound:
                # Its start may still be owed (Temporal was away at the request).
                if attempt == 0 and await self._starts.start_owed(return_workflow_id(return_id)):
                    continue
                raise
            except WorkflowUpdateFailedError as exc:
                raise _refused(exc, what, name) from exc
            try:
                await asyncio.wait_for(update.result(), ACTION_SECONDS)
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
                return False
            except WorkflowUpdateFailedError as exc:
                # A validator's refusal (or the handler's, e.g. a refused label) arrives
                # with the outcome.
                raise _refused(exc, what, name) from exc
            return True
        raise WorkflowNotFound(f"{what} is not running")


def _refused(exc: WorkflowUpdateFailedError, what: str, name: str) -> Exception:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return WorkflowRefused(cause.message, code=cause.type)
    return TemporalUnavailable(f"{what} could not take {name}; try again")
