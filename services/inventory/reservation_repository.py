"""The reservations' SQL: stock held for orders, moved between statuses, kept, expired."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.inventory import Reservation, ReservationStatus


class ReservationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rows: Sequence[Reservation]) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def for_order(self, order_id: str) -> list[Reservation]:
        result = await self.session.exec(
            select(Reservation)
            .where(Reservation.order_id == order_id)
            .order_by(col(Reservation.product_id))
        )
        return list(result.all())

    async def move(
        self,
        order_id: str,
        source: ReservationStatus,
        to: ReservationStatus,
        *,
        only_expired_before: datetime | None = None,
    ) -> list[tuple[str, int]]:
        """Move the order's reservations in ``source`` to ``to`` (conditionally, so each
        moves once): (product id, quantity) of each moved, in product-id order."""
        conditions = [
            col(Reservation.order_id) == order_id,
            col(Reservation.status) == source,
        ]
        if only_expired_before is not None:
            conditions.append(col(Reservation.expires_at) < only_expired_before)
        moved = await self.session.exec(
            update(Reservation)
            .where(*conditions)
            .values(status=to, updated_at=utcnow())
            .returning(col(Reservation.product_id), col(Reservation.quantity))
        )
        return sorted((product_id, quantity) for product_id, quantity in moved.all())

    async def mark(self, order_id: str, product_id: str, to: ReservationStatus) -> None:
        """The order's reservation of ``product_id`` moved to ``to`` (the caller has just
        moved it from where it was, in the same transaction)."""
        await self.session.exec(
            update(Reservation)
            .where(
                col(Reservation.order_id) == order_id,
                col(Reservation.product_id) == product_id,
            )
            .values(status=to, updated_at=utcnow())
        )

    async def reactivate(self, order_id: str, until: datetime) -> int:
        """The order's expired reservations active again until ``until``: how many."""
        result = await self.session.exec(
            update(Reservation)
            .where(
                col(Reservation.order_id) == order_id,
                col(Reservation.status) == ReservationStatus.EXPIRED,
            )
            .values(status=ReservationStatus.ACTIVE, expires_at=until, updated_at=utcnow())
            .returning(col(Reservation.id))
        )
        return len(result.all())

    async def extend(self, order_id: str, until: datetime) -> int:
        result = await self.session.exec(
            update(Reservation)
            .where(
                col(Reservation.order_id) == order_id,
                col(Reservation.status) == ReservationStatus.ACTIVE,
            )
            .values(expires_at=until, updated_at=utcnow())
            .returning(col(Reservation.id))
        )
        return len(result.all())

    async def hold_at_least(self, order_id: str, until: datetime) -> int:
        """The order's active reservations kept at least until ``until`` (never shortened)."""
        result = await self.session.exec(
            update(Reservation)
            .where(
                col(Reservation.order_id) == order_id,
                col(Reservation.status) == ReservationStatus.ACTIVE,
                col(Reservation.expires_at) < until,
            )
            .values(expires_at=until, updated_at=utcnow())
            .returning(col(Reservation.id))
        )
        return len(result.all())

    async def expired_orders(self, now: datetime, limit: int) -> list[str]:
        """Up to ``limit`` orders holding reservations that expired before ``now``, the
        one whose earliest expired first first (two of one instant by id): under a
        backlog larger than a sweep, the oldest are never left for later (``DISTINCT``
        with a ``LIMIT`` took whichever the plan met first)."""
        expired = func.min(col(Reservation.expires_at))
        result = await self.session.exec(
            select(Reservation.order_id)
            .where(
                col(Reservation.status) == ReservationStatus.ACTIVE,
                col(Reservation.expires_at) < now,
            )
            .group_by(col(Reservation.order_id))
            .order_by(expired, col(Reservation.order_id))
            .limit(limit)
        )
        return list(result.all())
