"""SQL for webhook deliveries and their attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, update
from sqlalchemy.dialects.postgresql import ARRAY, array, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import delete_batch, locked
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.webhook_deliveries import WebhookAttempt, WebhookDelivery, WebhookStatus
from models.webhooks import ALL_EVENTS, WebhookEndpoint

# What staff can send again: given up on, or never attempted (endpoint disabled).
RECOVERABLE = (WebhookStatus.FAILED, WebhookStatus.SKIPPED)


@dataclass(frozen=True)
class AttemptRecord:
    generation: int
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def endpoints_wanting(self, event_type: str) -> list[WebhookEndpoint]:
        """The endpoints that take ``event_type`` (or every type), enabled or not: a
        disabled one is owed a skipped delivery it can recover.

        Read under ``FOR KEY SHARE``, the lock the delivery's insert takes on its
        endpoint anyway (its foreign key), taken before the skip is decided rather than
        after: a re-enable (``FOR UPDATE``) in progress is waited for and its
        ``enabled`` read as committed, and one starting later waits for this
        transaction, so no delivery is recorded ``skipped`` after the re-enable commits
        (unlocked, the relay could read the endpoint disabled just before the ``PATCH``
        committed and insert the skipped row just after, missed by the ``retry-failed``
        that followed). Health updates (``NO KEY UPDATE``) do not wait for it."""
        rows = await self.session.exec(
            locked(
                select(WebhookEndpoint)
                .where(
                    col(WebhookEndpoint.event_types).op("&&")(
                        cast(array([event_type, ALL_EVENTS]), ARRAY(Text))
                    ),
                )
                .order_by(col(WebhookEndpoint.id)),
                read=True,
                key_share=True,
            )
        )
        return list(rows.all())

    async def add_once(
        self,
        *,
        endpoint_id: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        skipped_because: str | None = None,
    ) -> bool:
        """Record the delivery unless (event, endpoint) has one; True if recorded now.
        Pending, or with ``skipped_because`` skipped (not attempted) with that reason."""
        inserted = await self.session.exec(
            insert(WebhookDelivery)
            .values(
                id=new_id(IdPrefix.WEBHOOK_DELIVERY),
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                status=WebhookStatus.PENDING if skipped_because is None else WebhookStatus.SKIPPED,
                generation=0,
                attempts=0,
                last_error=skipped_because,
                finished_at=None if skipped_because is None else utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
            .returning(col(WebhookDelivery.id))
        )
        return inserted.first() is not None

    async def about_user(self, user_id: str) -> list[WebhookDelivery]:
        """Deliveries whose payload is about the user (its ``data.userId``)."""
        rows = await self.session.exec(
            select(WebhookDelivery).where(
                col(WebhookDelivery.payload)["data"]["userId"].astext == user_id
            )
        )
        return list(rows.all())

    def save(self, delivery: WebhookDelivery) -> None:
        self.session.add(delivery)

    async def target(
        self, event_id: str, endpoint_id: str
    ) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
        result = await self.session.exec(
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id == endpoint_id)
        )
        row = result.first()
        return None if row is None else (row[0], row[1])

    async def endpoint_exists(self, endpoint_id: str) -> bool:
        result = await self.session.exec(
            select(WebhookEndpoint.id).where(WebhookEndpoint.id == endpoint_id)
        )
        return result.first() is not None

    async def record_attempt(self, delivery: WebhookDelivery, attempt: AttemptRecord) -> bool:
        """Count the attempt on the pending delivery of its generation (and mark it
        delivered if it succeeded); False, recording nothing, when it is not that."""
        changes: dict[str, Any] = {
            "attempts": col(WebhookDelivery.attempts) + 1,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        if attempt.succeeded:
            changes |= {"status": WebhookStatus.DELIVERED, "finished_at": utcnow()}
        result = await self.session.exec(
            update(WebhookDelivery)
            .where(
                col(WebhookDelivery.id) == delivery.id,
                col(WebhookDelivery.generation) == attempt.generation,
                col(WebhookDelivery.status) == WebhookStatus.PENDING,
            )
            .values(**changes)
            .returning(col(WebhookDelivery.id))
        )
        if result.first() is None:
            return False
        self.session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                generation=attempt.generation,
                succeeded=attempt.succeeded,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            )
        )
        await self.session.flush()
        return True

    async def fail(self, event_id: str, endpoint_id: str, generation: int, error: str) -> bool:
        """The pending delivery of this generation becomes failed; False if it was not."""
        result = await self.session.exec(
            update(WebhookDelivery)
            .where(
                col(WebhookDelivery.event_id) == event_id,
                col(WebhookDelivery.endpoint_id) == endpoint_id,
                col(WebhookDelivery.generation) == generation,
                col(WebhookDelivery.status) == WebhookStatus.PENDING,
            )
            .values(status=WebhookStatus.FAILED, last_error=error, finished_at=utcnow())
            .returning(col(WebhookDelivery.id))
        )
        return result.first() is not None

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        result = await self.session.exec(
            locked(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        )
        return result.one_or_none()

    async def lock_all_of(self, endpoint_id: str) -> None:
        """Lock every delivery of the endpoint (by id, as ``recoverable_of`` does): what
        deleting the endpoint does before it locks the endpoint's row. The sender writes a
        delivery, then its endpoint's run of failures; the endpoint's row first and then
        its deliveries (by the delete's cascade) was the other order, a deadlock."""
        await self.session.exec(
            locked(
                select(col(WebhookDelivery.id))
                .where(col(WebhookDelivery.endpoint_id) == endpoint_id)
                .order_by(col(WebhookDelivery.id))
            )
        )

    async def recoverable_of(self, endpoint_id: str, *, limit: int) -> list[WebhookDelivery]:
        """The endpoint's failed and skipped deliveries, oldest first, at most ``limit``,
        locked (a concurrent call waits, then finds them pending and leaves them)."""
        rows = await self.session.exec(
            locked(
                select(WebhookDelivery)
                .where(
                    col(WebhookDelivery.endpoint_id) == endpoint_id,
                    col(WebhookDelivery.status).in_(RECOVERABLE),
                )
                .order_by(col(WebhookDelivery.id))
                .limit(limit)
            )
        )
        return list(rows.all())

    async def send_again(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """A failed or skipped delivery back to pending, in a new generation."""
        delivery.status = WebhookStatus.PENDING
        delivery.generation += 1
        delivery.finished_at = None
        self.session.add(delivery)
        await self.session.flush()
        await self.session.refresh(delivery)
        return delivery

    async def page(
        self, endpoint_id: str, *, status: WebhookStatus | None, offset: int, limit: int
    ) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], int]:
        """The endpoint's deliveries, newest first, each with its attempts (oldest
        first), and how many there are."""
        where = [col(WebhookDelivery.endpoint_id) == endpoint_id]
        if status is not None:
            where.append(col(WebhookDelivery.status) == status)
        rows = list(
            (
                await self.session.exec(
                    select(WebhookDelivery)
                    .where(*where)
                    .order_by(col(WebhookDelivery.id).desc())
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
        )
        total = (
            await self.session.exec(select(func.count()).select_from(WebhookDelivery).where(*where))
        ).one()
        attempts: dict[str, list[WebhookAttempt]] = {r.id: [] for r in rows}
        if rows:
            found = await self.session.exec(
                select(WebhookAttempt)
                .where(col(WebhookAttempt.delivery_id).in_(list(attempts)))
                .order_by(col(WebhookAttempt.id))
            )
            for attempt in found.all():
                attempts[attempt.delivery_id].append(attempt)
        return [(r, attempts[r.id]) for r in rows], total

    async def attempts_of(self, delivery_id: str) -> list[WebhookAttempt]:
        found = await self.session.exec(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(col(WebhookAttempt.id))
        )
        return list(found.all())

    async def delete_finished_before(
        self, status: WebhookStatus, cutoff: datetime, limit: int
    ) -> int:
        """Delete up to ``limit`` deliveries with ``status`` (delivered, failed or skipped:
        finished, so ``finished_at`` is set) that finished before ``cutoff``, oldest first,
        with their attempts (``ON DELETE CASCADE``). Rows another transaction holds (a
        retry taking a failed or skipped one) are left for the next batch."""
        if status is WebhookStatus.PENDING:
            raise ValueError("a pending delivery is still being sent: never pruned")
        return await delete_batch(
            self.session,
            col(WebhookDelivery.id),
            select(WebhookDelivery.id)
            .where(
                col(WebhookDelivery.status) == status,
                col(WebhookDelivery.finished_at) < cutoff,
            )
            .order_by(col(WebhookDelivery.finished_at), col(WebhookDelivery.id))
            .limit(limit),
            # Taken by a retry after the choice: pending again, kept.
            col(WebhookDelivery.status) == status,
        )
