"""Pruning the outbox: delivered rows older than the retention go, with their deliveries
and receipts (``ON DELETE CASCADE``). Undelivered rows, dead letters among them, stay.
Webhook deliveries skipped for a disabled endpoint and not recovered within the same
retention go too: an endpoint left disabled would otherwise keep every event for ever."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from services.webhooks.delivery_repository import WebhookDeliveryRepository

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
        chosen = (
            locked(
                select(OutboxEvent.id)
                .where(
                    col(OutboxEvent.delivered_at).is_not(None),
                    col(OutboxEvent.delivered_at) < cutoff,
                    ~open_delivery,
                )
                .order_by(col(OutboxEvent.delivered_at))
                .limit(limit),
                skip_locked=True,
            )
            # Materialized, so a rescan cannot pick further rows past ``limit``.
            .cte("chosen")
            .prefix_with("MATERIALIZED")
        )
        deleted = await self.session.exec(
            delete(OutboxEvent)
            .where(col(OutboxEvent.id).in_(select(chosen.c.id)))
            .returning(col(OutboxEvent.id))
        )
        return len(deleted.all())


async def prune_outbox(
    session: AsyncSession, *, retention: timedelta, limit: int, now: datetime | None = None
) -> int:
    """One batch: how many outbox rows delivered more than ``retention`` ago were deleted,
    and webhook deliveries skipped (their endpoint disabled) more than ``retention`` ago,
    never recovered. Either batch full makes the sum at least ``limit``: the caller goes
    on while one of them has more."""
    cutoff = (now or utcnow()) - retention
    outbox = await OutboxPruneRepository(session).delete_delivered_before(cutoff, limit)
    skipped = await WebhookDeliveryRepository(session).delete_skipped_before(cutoff, limit)
    return outbox + skipped
