"""Reservations that cannot oversell: held for an order, then sold, released, expired or
returned, each move once.

A reservation is one conditional UPDATE of each product's ``stock_levels`` row plus a
``stock_movements`` row, in the caller's one transaction. Rows are taken in product-id
order, so two orders never deadlock, and only succeed when ``on_hand - reserved`` covers
them, so stock is never promised twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from models.base import utcnow
from models.inventory import MovementKind, Reservation, ReservationLine, ReservationStatus
from services.inventory.reservation_repository import ReservationRepository
from services.inventory.stock import StockService
from services.inventory.stock_repository import StockRepository


@dataclass(frozen=True)
class Restock:
    """What ``ReservationService.restock`` did: how many sold lines it gave back, and the
    units (by product) the stock had no room for, not put back on hand."""

    returned: int
    not_put_back: dict[str, int]


class StockInvariantBroken(RuntimeError):
    """A product's stock row refused a reservation's sale or release: its reserved count
    no longer covers what is held (a bug, or the row edited by hand). Not a business
    outcome: the step fails (retried, in Temporal's UI with this message) rather than
    record a ledger movement that did not happen."""


class OutOfStock(Conflict):
    code = "out_of_stock"
    title = "Not enough stock"


class ReservationLapsed(Conflict):
    code = "reservation_lapsed"
    title = "The reservation expired or was released"


class ReservationService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = ReservationRepository(session)
        self.stock = StockRepository(session)
        self.stock_service = StockService(session)

    async def reserve(
        self, order_id: str, lines: Sequence[ReservationLine], ttl: timedelta
    ) -> list[Reservation]:
        """All lines or none; idempotent per order (a second call returns the first).

        A reservation that already lapsed (expired or released) is not quietly reported
        as held: that answers 409 ``reservation_lapsed``."""
        existing = await self.reservations(order_id)
        if existing:
            if any(
                r.status in (ReservationStatus.ACTIVE, ReservationStatus.COMMITTED)
                for r in existing
            ):
                return existing
            raise ReservationLapsed(f"the stock held for {order_id} was given back")
        quantities = _quantities(lines)
        ordered = sorted(quantities)  # lock order: product id, so orders never deadlock
        await self._take(quantities)
        expires_at = utcnow() + ttl
        rows = []
        for product_id in ordered:
            rows.append(
                Reservation(
                    order_id=order_id,
                    product_id=product_id,
                    quantity=quantities[product_id],
                    status=ReservationStatus.ACTIVE,
                    expires_at=expires_at,
                )
            )
            self.stock.record(
                product_id,
                MovementKind.RESERVATION,
                reserved=quantities[product_id],
                reference=order_id,
            )
        await self.repository.add(rows)
        for product_id in ordered:
            await self.stock_service.after_change(product_id)
        return rows

    async def _take(self, quantities: dict[str, int]) -> None:
        """Hold each product's quantity, in product-id order; ``OutOfStock`` (the
        caller's transaction rolls back, and what was taken with it) if any falls short."""
        ordered = sorted(quantities)  # lock order: product id, so orders never deadlock
        await self.stock.ensure_rows(ordered)
        short: list[dict[str, int | str]] = []
        for product_id in ordered:
            wanted = quantities[product_id]
            if not await self.stock.change(product_id, reserved=wanted, guard_available=wanted):
                short.append({"productId": product_id, "requested": wanted})
        if short:
            available = await self.stock.available([str(s["productId"]) for s in short])
            for item in short:
                item["available"] = max(available[str(item["productId"])], 0)
            raise OutOfStock(
                "not enough stock for: " + ", ".join(str(s["productId"]) for s in short),
                unavailableItems=short,
            )

    async def reserve_again(self, order_id: str, ttl: timedelta) -> int:
        """The order's stock held again if its reservation expired meanwhile (3-D Secure
        or a long-retried authorise answered after the hold lapsed): every line or
        ``OutOfStock``. 0 when it is still held (then kept for ``ttl`` from now, never
        shortened) or sold; otherwise how many lines were held again. A reservation
        released (the order undone) is not taken back: 409 ``reservation_lapsed``."""
        existing = await self.reservations(order_id)
        states = {r.status for r in existing}
        if states & {ReservationStatus.ACTIVE, ReservationStatus.COMMITTED}:
            # Still held, maybe for seconds more: kept for ``ttl`` from now, so that the
            # sweep cannot take it between this step and the sale.
            await self.repository.hold_at_least(order_id, utcnow() + ttl)
            return 0
        if not existing or states != {ReservationStatus.EXPIRED}:
            raise ReservationLapsed(f"the stock held for {order_id} was given back")
        # The rows first (a conditional update: a repeat racing this one finds them
        # active), then the stock; short of it, the transaction undoes both.
        if await self.repository.reactivate(order_id, utcnow() + ttl) == 0:
            return 0
        quantities = {r.product_id: r.quantity for r in existing}
        await self._take(quantities)
        for product_id in sorted(quantities):
            self.stock.record(
                product_id,
                MovementKind.RESERVATION,
                reserved=quantities[product_id],
                reason="held again after the payment",
                reference=order_id,
            )
            await self.stock_service.after_change(product_id)
        return len(quantities)

    async def reservations(self, order_id: str) -> list[Reservation]:
        return await self.repository.for_order(order_id)

    async def _close(
        self, order_id: str, to: ReservationStatus, *, only_expired_before: datetime | None = None
    ) -> int:
        """The order's active reservations moved to ``to``, each product's stock with
        them (a sale takes the units off hand, anything else gives them back to available)
        and a ledger movement. If a stock row refuses the change, it no longer covers the
        reservation (an invariant broken by a bug or a hand edit): ``StockInvariantBroken``
        rolls the caller's transaction back, so no movement is recorded that did not
        happen and the reservation stays active until the row is put right."""
        closed = await self.repository.move(
            order_id, ReservationStatus.ACTIVE, to, only_expired_before=only_expired_before
        )
        for product_id, quantity in closed:
            if to is ReservationStatus.COMMITTED:
                if not await self.stock.change(product_id, on_hand=-quantity, reserved=-quantity):
                    raise await self._broken(order_id, product_id, quantity, to)
                self.stock.record(
                    product_id,
                    MovementKind.SALE,
                    on_hand=-quantity,
                    reserved=-quantity,
                    reference=order_id,
                )
            else:
                if not await self.stock.change(product_id, reserved=-quantity):
                    raise await self._broken(order_id, product_id, quantity, to)
                self.stock.record(
                    product_id,
                    MovementKind.RELEASE,
                    reserved=-quantity,
                    reason=str(to),
                    reference=order_id,
                )
            await self.stock_service.after_change(product_id)
        return len(closed)

    async def _broken(
        self, order_id: str, product_id: str, quantity: int, to: ReservationStatus
    ) -> StockInvariantBroken:
        stock = await self.stock.stock(product_id)
        now = (
            "no such product"
            if stock is None
            else f"on hand {stock.on_hand}, reserved {stock.reserved}"
        )
        return StockInvariantBroken(
            f"the stock of {product_id} does not cover the {quantity} held for {order_id} "
            f"({now}): the reservation cannot be {to}; nothing was recorded. Put the stock "
            "row right (its reserved count includes every active reservation), then retry"
        )

    async def release(self, order_id: str) -> int:
        """Give the order's active reservations back to stock; idempotent."""
        return await self._close(order_id, ReservationStatus.RELEASED)

    async def commit(self, order_id: str) -> int:
        """Turn the order's active reservations into a sale; idempotent (0 once sold).
        If they lapsed before the sale (expired, released), 409 ``reservation_lapsed``:
        a sale must never go through without stock held for it."""
        committed = await self._close(order_id, ReservationStatus.COMMITTED)
        if committed == 0:
            states = {r.status for r in await self.reservations(order_id)}
            if states and ReservationStatus.COMMITTED not in states:
                raise ReservationLapsed(f"the stock held for {order_id} was given back")
        return committed

    async def restock(self, order_id: str) -> Restock:
        """Undo a sale whose order was later undone: its stock goes back on hand (a
        ``return`` movement). Idempotent; nothing returned when nothing was sold. A
        product whose stock staff topped up meanwhile to nearly the most it holds takes
        no units back (``StockService.put_back``): its reservation ends ``not_put_back``
        and ``Restock.not_put_back`` names it, for the order's timeline. Never refused: a
        compensation must finish."""
        returned = await self.repository.move(
            order_id, ReservationStatus.COMMITTED, ReservationStatus.RETURNED
        )
        not_put_back: dict[str, int] = {}
        for product_id, quantity in returned:
            if not await self.stock_service.put_back(
                product_id, quantity, reason="order undone", reference=order_id, order_id=order_id
            ):
                await self.repository.mark(order_id, product_id, ReservationStatus.NOT_PUT_BACK)
                not_put_back[product_id] = quantity
        return Restock(returned=len(returned), not_put_back=not_put_back)

    async def extend(self, order_id: str, until: datetime) -> int:
        """Keep the order's active reservations until ``until`` (e.g. while 3-D Secure
        waits on the customer)."""
        return await self.repository.extend(order_id, until)

    async def expired_orders(self, now: datetime, limit: int) -> list[str]:
        """Orders holding a reservation past its expiry (for the sweeper)."""
        return await self.repository.expired_orders(now, limit)

    async def expire(self, order_id: str, now: datetime) -> int:
        return await self._close(order_id, ReservationStatus.EXPIRED, only_expired_before=now)


def _quantities(lines: Sequence[ReservationLine]) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for line in lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    return quantities
