"""Inventory activities: the reservation sweeper (and, with checkout, reserve/commit)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from core.db import SessionFactory, transaction
from models.base import utcnow
from services.inventory import ReservationService


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
        Idempotent: only reservations still active and past their expiry move."""
        now = utcnow()
        async with self._sessions() as session:
            orders = await ReservationService(session).expired_orders(now, input.limit)
        released = 0
        for order_id in orders:
            async with transaction(self._sessions) as session:
                released += await ReservationService(session).expire(order_id, now)
        return SweepResult(orders=len(orders), reservations=released)
