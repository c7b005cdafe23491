"""Pruning the outbox, the webhook deliveries and the started workflow starts, one batch
per call (the ``outbox-prune`` schedule's ``OutboxPruneWorkflow``).

Outbox rows delivered before the retention go, with their deliveries and receipts (``ON
DELETE CASCADE``); undelivered rows, dead letters among them, stay. Webhook deliveries
go by their status, with their attempts: delivered ones after
``WEBHOOK_DELIVERY_RETENTION_DAYS``, failed ones (dead letters: staff read and retry them)
after the longer ``WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS``, skipped ones (their endpoint
disabled) not recovered within the outbox's retention, as an endpoint left disabled would
otherwise keep every event for ever. A pending delivery (being sent, or retried) is never
pruned: a retry makes a failed or skipped one pending, and its retention starts again when
it finishes. Workflow starts go ``WORKFLOW_START_RETENTION_DAYS`` after they started; one
still owed never (``WorkflowStartRepository.delete_started_before`` says why that is safe
for every kind)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import delete_batch
from core.settings import Settings
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from models.webhook_deliveries import WebhookStatus
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.workflow_starts import WorkflowStartRepository

# Still owed to someone: never pruned, whatever ``delivered_at`` says.
_OPEN = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


class OutboxPruneRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def delete_delivered_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows delivered before ``cutoff``, oldest first; rows
        another transaction holds are left for the next batch."""
        open_delivery = exists().where(
            col(EventDelivery.event_id) == col(OutboxEvent.id),
            col(EventDelivery.status).in_(_OPEN),
        )
        return await delete_batch(
            self.session,
            col(OutboxEvent.id),
            select(OutboxEvent.id)
            .where(
                col(OutboxEvent.delivered_at).is_not(None),
                col(OutboxEvent.delivered_at) < cutoff,
                ~open_delivery,
            )
            .order_by(col(OutboxEvent.delivered_at), col(OutboxEvent.id))
            .limit(limit),
        )


@dataclass(frozen=True)
class Retention:
    """How long finished rows are kept, by kind."""

    outbox: timedelta  # delivered outbox rows, and skipped webhook deliveries
    webhook_delivered: timedelta
    webhook_failed: timedelta
    workflow_starts: timedelta  # started ones

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        return cls(
            outbox=timedelta(days=settings.outbox_retention_days),
            webhook_delivered=timedelta(days=settings.webhook_delivery_retention_days),
            webhook_failed=timedelta(days=settings.webhook_failed_delivery_retention_days),
            workflow_starts=timedelta(days=settings.workflow_start_retention_days),
        )


async def prune_outbox(
    session: AsyncSession, *, retention: Retention, limit: int, now: datetime | None = None
) -> int:
    """One batch: how many rows past their retention were deleted, up to ``limit`` of each
    kind (outbox rows; webhook deliveries skipped, delivered, failed; started workflow
    starts). Any kind's batch full makes the sum at least ``limit``: the caller goes on
    while one of them has more."""
    now = now or utcnow()
    deleted = await OutboxPruneRepository(session).delete_delivered_before(
        now - retention.outbox, limit
    )
    webhooks = WebhookDeliveryRepository(session)
    for status, kept in (
        (WebhookStatus.SKIPPED, retention.outbox),
        (WebhookStatus.DELIVERED, retention.webhook_delivered),
        (WebhookStatus.FAILED, retention.webhook_failed),
    ):
        deleted += await webhooks.delete_finished_before(status, now - kept, limit)
    deleted += await WorkflowStartRepository(session).delete_started_before(
        now - retention.workflow_starts, limit
    )
    return deleted
