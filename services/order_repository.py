"""All SQL of orders: the order row, its lines, timeline (``OrderTimelineRepository``,
which this extends) and payment, and searches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Select as CoreSelect
from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from core.db import first_row, insert_rows, locked
from core.errors import NotFound
from core.ids import IdPrefix, new_id
from models.orders import (
    AFTER_SALE_STATUSES,
    Order,
    OrderLine,
    OrderStatus,
)
from models.payments import Payment
from models.quotes import QuoteLine
from services.order_timeline_repository import OrderTimelineRepository


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "No such order"


@dataclass(frozen=True)
class OrderFilter:
    user_id: str | None = None
    status: OrderStatus | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class ChargeTerms:
    """What authorising an order's payment reads of the order (``charge_terms``)."""

    order_id: str
    total: int
    currency: str
    payment_token: str
    undoing_at: datetime | None


class OrderRepository(OrderTimelineRepository):
    # The order's row by id, read about ten times an order by its steps: built once, with
    # a bind parameter, SQLAlchemy reuses its memoised cache key instead of building the
    # statement and its key per call (issue #15).
    @staticmethod
    @cache
    def _order_statement(lock: bool) -> SelectOfScalar[Order]:
        query = select(Order).where(Order.id == bindparam("p_order_id"))
        return locked(query) if lock else query

    # The reads below return columns, not an order: Core statements built once, run on the
    # session's connection, without the ORM's execute path (its compile state, loading
    # context and autoflush), the cost left of an ORM read already built once (issue #15).
    # Nothing staged is flushed first: their callers read before they write.

    @staticmethod
    @cache
    def _undoing_statement() -> CoreSelect[datetime | None]:
        orders = Order.__table__  # type: ignore[attr-defined]
        return locked(
            core_select(orders.c.undoing_at).where(orders.c.id == bindparam("p_order_id"))
        )

    @staticmethod
    @cache
    def _status_statement() -> CoreSelect[str]:
        orders = Order.__table__  # type: ignore[attr-defined]
        return core_select(orders.c.status).where(orders.c.id == bindparam("p_order_id"))

    @staticmethod
    @cache
    def _charge_statement() -> CoreSelect[str, int, str, str, datetime | None]:
        orders = Order.__table__  # type: ignore[attr-defined]
        return locked(
            core_select(
                orders.c.id,
                orders.c.total,
                orders.c.currency,
                orders.c.payment_token,
                orders.c.undoing_at,
            ).where(orders.c.id == bindparam("p_order_id"))
        )

    async def get(self, order_id: str, *, lock: bool = False) -> Order | None:
        return (
            await self.session.exec(self._order_statement(lock), params={"p_order_id": order_id})
        ).first()

    async def require(self, order_id: str, *, lock: bool = False) -> Order:
        order = await self.get(order_id, lock=lock)
        if order is None:
            raise OrderNotFound(f"no order {order_id}")
        return order

    async def reread(self, order: Order) -> Order:
        """``order`` as the database has it now (a workflow may have moved it since)."""
        await self.session.refresh(order)
        return order

    async def undoing_since(self, order_id: str) -> datetime | None:
        """Lock the order's row and return when its undoing began (None: it has not),
        without loading the order: the fence of a step that needs nothing else of it."""
        found = await first_row(self.session, self._undoing_statement(), {"p_order_id": order_id})
        if found is None:
            raise OrderNotFound(f"no order {order_id}")
        return found[0]

    async def status_of(self, order_id: str) -> OrderStatus:
        """The order's status alone (one column of one row)."""
        found = await first_row(self.session, self._status_statement(), {"p_order_id": order_id})
        if found is None:
            raise OrderNotFound(f"no order {order_id}")
        return OrderStatus(found[0])

    @staticmethod
    @cache
    def _addressee_statement() -> CoreSelect[str | None, str]:
        orders = Order.__table__  # type: ignore[attr-defined]
        return core_select(orders.c.user_id, orders.c.email).where(
            orders.c.id == bindparam("p_order_id")
        )

    async def addressee(self, order_id: str) -> tuple[str | None, str] | None:
        """The order's account and the address its customer chose (None: no such
        order), without loading the order: its emails' recipient."""
        found = await first_row(self.session, self._addressee_statement(), {"p_order_id": order_id})
        return None if found is None else (found[0], found[1])

    async def charge_terms(self, order_id: str) -> ChargeTerms:
        """Lock the order's row and return what authorising its payment reads of it,
        without loading the order (``OrderService.charge_terms`` fences it)."""
        found = await first_row(self.session, self._charge_statement(), {"p_order_id": order_id})
        if found is None:
            raise OrderNotFound(f"no order {order_id}")
        order_id, total, currency, payment_token, undoing_at = found
        return ChargeTerms(order_id, total, currency, payment_token, undoing_at)

    async def live_for_cart(self, cart_id: str) -> Order | None:
        result = await self.session.exec(
            select(Order).where(
                Order.cart_id == cart_id,
                col(Order.status).not_in([OrderStatus.FAILED, OrderStatus.CANCELLED]),
            )
        )
        return result.first()

    @staticmethod
    @cache
    def _lines_statement() -> SelectOfScalar[OrderLine]:
        # Read several times an order (its reservation, confirmation, fulfilment; issue #15).
        return (
            select(OrderLine)
            .where(OrderLine.order_id == bindparam("p_order_id"))
            .order_by(col(OrderLine.id))
        )

    async def lines(self, order_id: str) -> list[OrderLine]:
        result = await self.session.exec(self._lines_statement(), params={"p_order_id": order_id})
        return list(result.all())

    async def erase_email(self, user_id: str, erased: str) -> tuple[str, ...]:
        """The user's orders keep ``erased`` as their email (an erased account); the
        addresses they had."""
        before = await self.session.exec(
            select(Order.email).where(Order.user_id == user_id, Order.email != erased).distinct()
        )
        addresses = tuple(before.all())
        await self.session.exec(
            update(Order).where(col(Order.user_id) == user_id).values(email=erased)
        )
        return addresses

    async def ids_for_user(self, user_id: str) -> list[str]:
        rows = await self.session.exec(select(Order.id).where(Order.user_id == user_id))
        return list(rows.all())

    async def payment(self, order_id: str) -> Payment | None:
        result = await self.session.exec(select(Payment).where(Payment.order_id == order_id))
        return result.first()

    async def search(
        self, where: OrderFilter, *, offset: int, limit: int
    ) -> tuple[list[tuple[Order, int]], int]:
        conditions = []
        if where.user_id is not None:
            conditions.append(col(Order.user_id) == where.user_id)
        if where.status is not None:
            conditions.append(col(Order.status) == where.status)
        if where.created_from is not None:
            conditions.append(col(Order.created_at) >= where.created_from)
        if where.created_to is not None:
            conditions.append(col(Order.created_at) < where.created_to)
        counts = (
            select(OrderLine.order_id, func.sum(OrderLine.quantity).label("item_count"))
            .group_by(col(OrderLine.order_id))
            .subquery()
        )
        rows = await self.session.exec(
            select(Order, func.coalesce(counts.c.item_count, 0))
            .outerjoin(counts, counts.c.order_id == col(Order.id))
            .where(*conditions)
            .order_by(col(Order.created_at).desc(), col(Order.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(select(func.count()).select_from(Order).where(*conditions))
        return [(o, int(n)) for o, n in rows.all()], int(total.one())

    async def save(self, order: Order) -> Order:
        """Insert or update ``order``, flushed now."""
        self.session.add(order)
        await self.session.flush()
        return order

    def stage(self, order: Order) -> None:
        """Update ``order`` at the next flush (``add_event`` flushes)."""
        self.session.add(order)

    async def add_lines(self, order_id: str, lines: Sequence[QuoteLine]) -> None:
        """The order's lines as priced (validate-order's snapshot)."""
        rows = [
            {
                "id": new_id(IdPrefix.ORDER_LINE),
                "order_id": order_id,
                "product_id": line.product_id,
                "name": line.name,
                "sku": line.sku,
                "quantity": line.quantity,
                "list_price": line.unit_price,
                "unit_price": line.effective_unit_price,
                "line_total": line.line_total,
            }
            for line in lines
        ]
        await insert_rows(self.session, self._new_lines_statement(), rows)

    # Every order's validate-order: built once, not a multi-VALUES statement compiled at
    # every call (``core.db.insert_rows``, issue #15).
    @staticmethod
    @cache
    def _new_lines_statement() -> ReturningInsert[tuple[str]]:
        lines = OrderLine.__table__  # type: ignore[attr-defined]
        return insert(lines).returning(lines.c.id)

    async def has_confirmed_purchase(self, user_id: str, product_id: str) -> bool:
        """``PurchaseHistory`` for reviews: a review is verified when the reviewer bought
        the product."""
        result = await self.session.exec(
            select(OrderLine.id)
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(
                Order.user_id == user_id,
                OrderLine.product_id == product_id,
                col(Order.status).in_(
                    [
                        OrderStatus.CONFIRMED,
                        OrderStatus.FULFILLMENT_QUEUED,
                        *AFTER_SALE_STATUSES,
                    ]
                ),
            )
            .limit(1)
        )
        return result.first() is not None
