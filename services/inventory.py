"""Stock, its ledger, reservations that cannot oversell, low-stock alerts and reorders.

Every change to a product's stock is one conditional UPDATE of its ``stock_levels`` row
plus a ``stock_movements`` row, in one transaction. Reservations take rows in product-id
order, so two orders never deadlock, and only succeed when ``on_hand - reserved`` covers
them, so stock is never promised twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound
from core.ids import IdPrefix, new_id
from core.outbox import publish
from models.base import utcnow
from models.catalog import Product
from models.inventory import (
    MovementKind,
    PurchaseOrder,
    PurchaseOrderStatus,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    StockMovement,
)

ON_HAND = col(StockLevel.on_hand)
RESERVED = col(StockLevel.reserved)
AVAILABLE = ON_HAND - RESERVED


class OutOfStock(Conflict):
    code = "out_of_stock"
    title = "Not enough stock"


class ReservationLapsed(Conflict):
    code = "reservation_lapsed"
    title = "The reservation expired or was released"


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    title = "The adjustment would make stock negative"


@dataclass(frozen=True)
class Stock:
    product_id: str
    on_hand: int
    reserved: int
    threshold: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ensure_rows(self, product_ids: Sequence[str]) -> None:
        if product_ids:
            await self.session.exec(
                pg_insert(StockLevel)
                .values([{"product_id": p, "on_hand": 0, "reserved": 0} for p in product_ids])
                .on_conflict_do_nothing(index_elements=["product_id"])
            )

    async def stock(self, product_id: str) -> Stock | None:
        row = (
            await self.session.exec(
                select(
                    Product.id, Product.low_stock_threshold, StockLevel.on_hand, StockLevel.reserved
                )
                .outerjoin(StockLevel, col(StockLevel.product_id) == col(Product.id))
                .where(Product.id == product_id)
            )
        ).first()
        if row is None:
            return None
        return Stock(row[0], row[2] or 0, row[3] or 0, row[1])

    async def available(self, product_ids: Sequence[str]) -> dict[str, int]:
        rows = await self.session.exec(
            select(StockLevel.product_id, AVAILABLE).where(
                col(StockLevel.product_id).in_(product_ids)
            )
        )
        found = {r[0]: int(r[1]) for r in rows.all()}
        return {p: found.get(p, 0) for p in product_ids}

    async def change(
        self,
        product_id: str,
        *,
        on_hand: int = 0,
        reserved: int = 0,
        guard_available: int | None = None,
    ) -> bool:
        """Apply deltas atomically; with ``guard_available``, only if at least that much is
        available. False (and nothing changed) when a guard or constraint refuses."""
        conditions: list[ColumnElement[bool]] = [
            col(StockLevel.product_id) == product_id,
            ON_HAND + on_hand >= 0,
            RESERVED + reserved >= 0,
            RESERVED + reserved <= ON_HAND + on_hand,
        ]
        if guard_available is not None:
            conditions.append(guard_available <= AVAILABLE)
        result = await self.session.exec(
            update(StockLevel)
            .where(and_(*conditions))
            .values(on_hand=ON_HAND + on_hand, reserved=RESERVED + reserved, updated_at=utcnow())
            .returning(col(StockLevel.product_id))
        )
        return result.first() is not None

    def record(
        self,
        product_id: str,
        kind: MovementKind,
        *,
        on_hand: int = 0,
        reserved: int = 0,
        reason: str | None = None,
        reference: str | None = None,
    ) -> None:
        self.session.add(
            StockMovement(
                product_id=product_id,
                kind=kind,
                on_hand_delta=on_hand,
                reserved_delta=reserved,
                reason=reason,
                reference=reference,
            )
        )

    async def movements(
        self, product_id: str, *, offset: int, limit: int
    ) -> tuple[list[StockMovement], int]:
        rows = await self.session.exec(
            select(StockMovement)
            .where(StockMovement.product_id == product_id)
            .order_by(col(StockMovement.created_at).desc(), col(StockMovement.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(
            select(func.count())
            .select_from(StockMovement)
            .where(StockMovement.product_id == product_id)
        )
        return list(rows.all()), int(total.one())

    async def low(self, *, offset: int, limit: int) -> tuple[list[Stock], int]:
        available = AVAILABLE
        condition = and_(
            col(Product.deleted_at).is_(None),
            func.coalesce(available, 0) < Product.low_stock_threshold,
        )
        query = (
            select(Product.id, Product.low_stock_threshold, StockLevel.on_hand, StockLevel.reserved)
            .outerjoin(StockLevel, col(StockLevel.product_id) == col(Product.id))
            .where(condition)
        )
        rows = await self.session.exec(
            query.order_by(func.coalesce(available, 0), col(Product.id)).offset(offset).limit(limit)
        )
        total = await self.session.exec(
            select(func.count())
            .select_from(Product)
            .outerjoin(StockLevel, col(StockLevel.product_id) == col(Product.id))
            .where(condition)
        )
        return [Stock(r[0], r[2] or 0, r[3] or 0, r[1]) for r in rows.all()], int(total.one())


class InventoryService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.stock = StockRepository(session)

    async def get(self, product_id: str) -> Stock:
        stock = await self.stock.stock(product_id)
        if stock is None:
            raise NotFound(f"no product {product_id}", code="product_not_found")
        return stock

    async def adjust(
        self,
        product_id: str,
        delta: int,
        reason: str,
        *,
        kind: MovementKind = MovementKind.ADJUSTMENT,
        reference: str | None = None,
    ) -> Stock:
        """Add (or, negative, remove) stock; 409 and no change if it would go below what
        is on hand and not reserved."""
        stock = await self.get(product_id)
        await self.stock.ensure_rows([product_id])
        if not await self.stock.change(product_id, on_hand=delta):
            raise InsufficientStock(
                f"removing {-delta} would leave negative or less than the reserved stock "
                f"(on hand {stock.on_hand}, reserved {stock.reserved})",
                onHand=stock.on_hand,
                reserved=stock.reserved,
            )
        self.stock.record(product_id, kind, on_hand=delta, reason=reason, reference=reference)
        await self._after_change(product_id)
        return await self.get(product_id)

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
        quantities: dict[str, int] = {}
        for line in lines:
            quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
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
            # The caller's transaction rolls back, and the reservations already taken
            # for other lines with it: all or nothing.
            raise OutOfStock(
                "not enough stock for: " + ", ".join(str(s["productId"]) for s in short),
                unavailableItems=short,
            )
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
        self.session.add_all(rows)
        await self.session.flush()
        for product_id in ordered:
            await self._after_change(product_id)
        return rows

    async def reservations(self, order_id: str) -> list[Reservation]:
        result = await self.session.exec(
            select(Reservation)
            .where(Reservation.order_id == order_id)
            .order_by(col(Reservation.product_id))
        )
        return list(result.all())

    async def _close(
        self, order_id: str, to: ReservationStatus, *, only_expired_before: datetime | None = None
    ) -> int:
        conditions = [
            col(Reservation.order_id) == order_id,
            col(Reservation.status) == ReservationStatus.ACTIVE,
        ]
        if only_expired_before is not None:
            conditions.append(col(Reservation.expires_at) < only_expired_before)
        closed = await self.session.exec(
            update(Reservation)
            .where(*conditions)
            .values(status=to, updated_at=utcnow())
            .returning(col(Reservation.product_id), col(Reservation.quantity))
        )
        count = 0
        for product_id, quantity in sorted(closed.all()):
            if to is ReservationStatus.COMMITTED:
                await self.stock.change(product_id, on_hand=-quantity, reserved=-quantity)
                self.stock.record(
                    product_id,
                    MovementKind.SALE,
                    on_hand=-quantity,
                    reserved=-quantity,
                    reference=order_id,
                )
            else:
                await self.stock.change(product_id, reserved=-quantity)
                self.stock.record(
                    product_id,
                    MovementKind.RELEASE,
                    reserved=-quantity,
                    reason=str(to),
                    reference=order_id,
                )
            await self._after_change(product_id)
            count += 1
        return count

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

    async def restock(self, order_id: str) -> int:
        """Undo a sale whose order was later undone: its stock goes back on hand (a
        ``return`` movement). Idempotent; 0 when nothing was sold."""
        returned = await self.session.exec(
            update(Reservation)
            .where(
                col(Reservation.order_id) == order_id,
                col(Reservation.status) == ReservationStatus.COMMITTED,
            )
            .values(status=ReservationStatus.RETURNED, updated_at=utcnow())
            .returning(col(Reservation.product_id), col(Reservation.quantity))
        )
        count = 0
        for product_id, quantity in sorted(returned.all()):
            await self.stock.change(product_id, on_hand=quantity)
            self.stock.record(
                product_id,
                MovementKind.RETURN,
                on_hand=quantity,
                reason="order undone",
                reference=order_id,
            )
            await self._after_change(product_id)
            count += 1
        return count

    async def extend(self, order_id: str, until: datetime) -> int:
        """Keep the order's active reservations until ``until`` (e.g. while 3-D Secure
        waits on the customer)."""
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

    async def expired_orders(self, now: datetime, limit: int) -> list[str]:
        result = await self.session.exec(
            select(Reservation.order_id)
            .where(
                col(Reservation.status) == ReservationStatus.ACTIVE,
                col(Reservation.expires_at) < now,
            )
            .distinct()
            .limit(limit)
        )
        return list(result.all())

    async def expire(self, order_id: str, now: datetime) -> int:
        return await self._close(order_id, ReservationStatus.EXPIRED, only_expired_before=now)

    async def _after_change(self, product_id: str) -> None:
        """Low-stock alert once per crossing; re-arm when stock climbs back."""
        crossed = await self.session.exec(
            update(StockLevel)
            .where(
                col(StockLevel.product_id) == product_id,
                col(StockLevel.low_stock_alerted).is_(False),
                select(Product.low_stock_threshold)
                .where(Product.id == product_id)
                .scalar_subquery()
                > AVAILABLE,
            )
            .values(low_stock_alerted=True)
            .returning(AVAILABLE)
        )
        row = crossed.first()
        if row is None:
            await self.session.exec(
                update(StockLevel)
                .where(
                    col(StockLevel.product_id) == product_id,
                    col(StockLevel.low_stock_alerted).is_(True),
                    select(Product.low_stock_threshold)
                    .where(Product.id == product_id)
                    .scalar_subquery()
                    <= AVAILABLE,
                )
                .values(low_stock_alerted=False)
            )
            return
        product = await self.session.get(Product, product_id)
        assert product is not None
        await publish(
            self.session,
            "inventory.low_stock",
            product_id,
            {
                "productId": product_id,
                "currentStock": int(row[0]),
                "threshold": product.low_stock_threshold,
            },
        )
        if product.auto_reorder and product.reorder_quantity > 0:
            await self.session.exec(
                pg_insert(PurchaseOrder)
                .values(
                    id=new_id(IdPrefix.PURCHASE_ORDER),
                    product_id=product_id,
                    quantity=product.reorder_quantity,
                    status=PurchaseOrderStatus.OPEN,
                    reason="auto-reorder: low stock",
                )
                .on_conflict_do_nothing(
                    index_elements=["product_id"], index_where=text("status = 'open'")
                )
            )

    async def receive(self, purchase_order_id: str) -> PurchaseOrder:
        """Book an open purchase order's quantity into stock as a receipt; once."""
        result = await self.session.exec(
            update(PurchaseOrder)
            .where(
                col(PurchaseOrder.id) == purchase_order_id,
                col(PurchaseOrder.status) == PurchaseOrderStatus.OPEN,
            )
            .values(status=PurchaseOrderStatus.RECEIVED, received_at=utcnow())
            .returning(col(PurchaseOrder.id))
        )
        po = await self.session.get(PurchaseOrder, purchase_order_id)
        if po is None:
            raise NotFound(
                f"no purchase order {purchase_order_id}", code="purchase_order_not_found"
            )
        if result.first() is None:
            raise Conflict(
                f"purchase order {purchase_order_id} is {po.status}", code="purchase_order_not_open"
            )
        await self.session.refresh(po)
        await self.adjust(
            po.product_id,
            po.quantity,
            f"purchase order {po.id}",
            kind=MovementKind.RECEIPT,
            reference=po.id,
        )
        return po

    async def purchase_orders(self, status: PurchaseOrderStatus | None) -> list[PurchaseOrder]:
        query = select(PurchaseOrder).order_by(col(PurchaseOrder.created_at).desc())
        if status is not None:
            query = query.where(PurchaseOrder.status == status)
        return list((await self.session.exec(query.limit(500))).all())
