"""``WebhookWorkflows``: the id scheme, queue and starts of ``WebhookDeliveryWorkflow``."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from models.base import utcnow
from models.workflow_starts import WorkflowStart
from services import workflow_starts
from services.workflow_starts import WorkflowStartRepository
from temporal.clients.connection import TemporalConnection, call
from temporal.clients.starts import start_row
from temporal.queues import TaskQueue
from workflows.types.webhooks import (
    WEBHOOK_DELIVERY_WORKFLOW,
    WebhookRetry,
    WebhookSendInput,
    webhook_workflow_id,
)


def retry_of(settings: Settings) -> WebhookRetry:
    return WebhookRetry(
        initial_seconds=settings.webhook_retry_initial_seconds,
        max_interval_seconds=settings.webhook_retry_max_interval_seconds,
        max_attempts=settings.webhook_max_attempts,
        timeout_seconds=settings.webhook_timeout_seconds + 5,
    )


def _row(input: WebhookSendInput) -> WorkflowStart:
    return WorkflowStart(
        workflow_type=WEBHOOK_DELIVERY_WORKFLOW,
        workflow_id=webhook_workflow_id(input.event_id, input.endpoint_id, input.generation),
        task_queue=str(TaskQueue.EVENTS),
        input=input.model_dump(mode="json"),
    )


class WebhookWorkflows:
    def __init__(self, connection: TemporalConnection, settings: Settings) -> None:
        self._connection = connection
        self._settings = settings

    def input(self, event_id: str, endpoint_id: str, generation: int) -> WebhookSendInput:
        return WebhookSendInput(
            event_id=event_id,
            endpoint_id=endpoint_id,
            generation=generation,
            retry=retry_of(self._settings),
        )

    async def start_in(
        self, session: AsyncSession, input: WebhookSendInput, *, fresh: bool = False
    ) -> None:
        """Record and start the delivery's workflow inside ``session``'s transaction (the
        relay's delivery of the event): a failed start raises, so the transaction rolls
        back and the relay retries the event; a workflow that exists with the id counts as
        started. Its first attempt may run before the commit: it finds no delivery yet and
        retries.

        ``fresh``: the delivery row was inserted by this transaction. A *closed* run with
        the id then does not count: it was started by an attempt that never committed, and
        gave up finding no delivery (nothing was sent; a run sends only a committed row),
        so a new run starts. Counting it would leave the delivery pending for ever."""
        row = _row(input)
        row.started_at = utcnow()
        await WorkflowStartRepository(session).add_once(row)
        client = await self._connection.client()
        await call(
            start_row(client, row, again_if_closed=fresh),
            what=f"webhook delivery {row.workflow_id}",
        )

    @staticmethod
    def request_start(session: AsyncSession, input: WebhookSendInput) -> WorkflowStart:
        """Record the start in the caller's transaction (an operator's retry); the caller
        starts it after the commit (``WorkflowStarts.start``)."""
        row = _row(input)
        return workflow_starts.request(
            session,
            workflow_type=row.workflow_type,
            workflow_id=row.workflow_id,
            task_queue=row.task_queue,
            input=input,
        )
