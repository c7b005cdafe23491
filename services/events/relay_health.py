"""How the relay is keeping up, read from the database when Prometheus scrapes ``/metrics``.

Four cheap queries, each on an index that exists: pending deliveries per subscriber
(``event_deliveries_status_created_at_idx``), those of them no live worker knows the
subscriber of (the same index, and ``event_subscriptions``' key), failed ones (the same
index), and the oldest outbox row not yet fanned out (``outbox_undispatched_idx``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery, EventSubscription
from models.outbox import OutboxEvent

# The label of the step before any subscriber: fanning outbox rows out to deliveries.
DISPATCH = "_dispatch"
# A relay writes what it knows twice a poll: three polls (of 5 s by default) without it,
# no live worker knows the pair.
LIVE_WITHIN = timedelta(seconds=15)


@dataclass(frozen=True)
class RelayHealth:
    # Seconds since the oldest pending delivery was created, per subscriber (and
    # ``_dispatch``: since the oldest outbox row not yet dispatched); 0 when none.
    lag_seconds: dict[str, float] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    # Pending deliveries whose (subscriber, event type) no live worker knows: waiting for
    # one (a rolling deploy under way), or for the grace to drop them (a removal).
    unknown: dict[str, int] = field(default_factory=dict)


class RelayHealthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pending(self) -> dict[str, tuple[int, datetime]]:
        """subscriber -> (pending deliveries, the oldest one's created_at)."""
        rows = await self.session.exec(
            select(
                EventDelivery.subscriber,
                func.count(),
                func.min(col(EventDelivery.created_at)),
            )
            .where(col(EventDelivery.status) == DeliveryStatus.PENDING)
            .group_by(col(EventDelivery.subscriber))
        )
        return {str(name): (int(count), oldest) for name, count, oldest in rows.all()}

    async def unknown(self, live_within: timedelta) -> dict[str, int]:
        """subscriber -> pending deliveries whose pair no relay has known within
        ``live_within``."""
        known = (
            select(col(EventSubscription.subscriber))
            .where(
                col(EventSubscription.subscriber) == col(EventDelivery.subscriber),
                col(EventSubscription.event_type) == col(EventDelivery.event_type),
                col(EventSubscription.known_at) >= func.now() - live_within,
            )
            .exists()
        )
        rows = await self.session.exec(
            select(EventDelivery.subscriber, func.count())
            .where(col(EventDelivery.status) == DeliveryStatus.PENDING, ~known)
            .group_by(col(EventDelivery.subscriber))
        )
        return {str(name): int(count) for name, count in rows.all()}

    async def failed(self) -> dict[str, int]:
        rows = await self.session.exec(
            select(EventDelivery.subscriber, func.count())
            .where(col(EventDelivery.status) == DeliveryStatus.FAILED)
            .group_by(col(EventDelivery.subscriber))
        )
        return {str(name): int(count) for name, count in rows.all()}

    async def oldest_undispatched(self) -> datetime | None:
        row = await self.session.exec(
            select(OutboxEvent.created_at)
            .where(col(OutboxEvent.dispatched_at).is_(None))
            .order_by(col(OutboxEvent.seq))
            .limit(1)
        )
        return row.first()


async def relay_health(
    session: AsyncSession, *, live_within: timedelta = LIVE_WITHIN
) -> RelayHealth:
    """Every subscriber seen pending or failed gets all four numbers (0 when none).
    ``live_within``: a pair no relay has written for this long no live worker knows."""
    repository = RelayHealthRepository(session)
    now = utcnow()
    pending = await repository.pending()
    unknown = await repository.unknown(live_within) if pending else {}
    failed = await repository.failed()
    undispatched = await repository.oldest_undispatched()
    names = sorted(set(pending) | set(failed))
    lag = {name: _age(now, pending[name][1]) if name in pending else 0.0 for name in names}
    lag[DISPATCH] = _age(now, undispatched) if undispatched is not None else 0.0
    return RelayHealth(
        lag_seconds=lag,
        pending={name: pending[name][0] if name in pending else 0 for name in names},
        dead_letters={name: failed.get(name, 0) for name in names},
        unknown={name: unknown.get(name, 0) for name in names},
    )


def _age(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())
