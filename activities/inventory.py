"""Inventory activities: the reservation sweeper (and, with checkout, reserve/commit)."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from temporalio import activity

from core.db import SessionFactory, transaction
from models.base import utcnow
from services.inventory import ReservationService, StockInvariantBroken

log = logging.getLogger(__name__)


class SweepInput(BaseModel):
    limit: int = 500


class SweepResult(BaseModel):
    orders: int
    reservations: int


class InventoryActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="inventory.sweep_expired_reservations")
    async def sweep_expired_reservations(self, input: SweepInput) -> SweepResult:
        """Give expired reservations back to stock, one order per transaction.
        Idempotent: only reservations still active and past their expiry move. An order
        whose stock row no longer covers its reservation (``StockInvariantBroken``) is
        left active and does not hold back the others: they are expired, then the
        activity fails with the first such error, so the sweep shows failed until the
        row is put right."""
        now = utcnow()
        async with self._sessions() as session:
            orders = await ReservationService(session).expired_orders(now, input.limit)
        released = 0
        broken: list[StockInvariantBroken] = []
        for order_id in orders:
            try:
                async with transaction(self._sessions) as session:
                    released += await ReservationService(session).expire(order_id, now)
            except StockInvariantBroken as error:
                log.error("reservation not expired: %s", error)
                broken.append(error)
        if broken:
            raise broken[0]
        return SweepResult(orders=len(orders), reservations=released)
