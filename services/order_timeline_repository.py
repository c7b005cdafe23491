"""The SQL of an order's timeline: its entries read for an audience, a status change
written with its entry in one statement (``move``), an entry alone (``add_event``).
``OrderRepository`` (``services/order_repository.py``) is this with the rest of the
order's SQL."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam, insert, text, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.orders import Order, OrderEvent, OrderStatus, TimelineAudience


class OrderTimelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def events(self, order_id: str, reader: TimelineAudience) -> list[OrderEvent]:
        """The order's timeline as ``reader`` sees it: a customer its ``customer``
        entries, staff every entry."""
        conditions = [col(OrderEvent.order_id) == order_id]
        if reader is TimelineAudience.CUSTOMER:
            conditions.append(col(OrderEvent.audience) == TimelineAudience.CUSTOMER)
        result = await self.session.exec(
            select(OrderEvent)
            .where(*conditions)
            .order_by(col(OrderEvent.created_at), col(OrderEvent.id))
        )
        return list(result.all())

    # The two inserts below are Core statements, not ORM objects: every order step writes
    # a timeline row, and ORM object construction and flushes showed in the worker's
    # profiles of the order's steps. Same columns and defaults as the models.

    async def move(
        self,
        order: Order,
        values: dict[str, Any],
        message: str,
        data: dict[str, Any],
    ) -> None:
        """Set ``values`` on the order's row and append its timeline entry at
        ``values["status"]`` (a status change: the customer's), in one statement (a
        data-modifying CTE: one round trip, no ORM flush); ``order`` is updated in memory
        as committed (nothing left to flush).
        The caller holds the row (``require(lock=True)``); what else is staged is flushed
        first, as ``add_event`` does."""
        await self.session.flush()
        params = {f"p_{name}": value for name, value in values.items()}
        params.update(
            p_order_id=order.id,
            event_id=new_id(IdPrefix.ORDER_EVENT),
            event_status=values["status"],
            event_message=message,
            event_data=data,
            event_audience=TimelineAudience.CUSTOMER.value,
            event_at=values.get("updated_at") or utcnow(),
        )
        # On the session's connection: a Core statement needs none of the session's steps.
        connection = await self.session.connection()
        await connection.execute(self._move_statement(tuple(values)), params)
        for key, value in values.items():
            set_committed_value(order, key, value)

    # Every step of every order moves it: built once per set of columns (one in practice,
    # ``OrderService.move``'s), with bind parameters, SQLAlchemy reuses its memoised cache
    # key instead of building the CTE, its column proxies and its key per call (issue #15).
    @staticmethod
    @cache
    def _move_statement(columns: tuple[str, ...]) -> Insert:
        orders = Order.__table__  # type: ignore[attr-defined]
        events = OrderEvent.__table__  # type: ignore[attr-defined]
        moved = (
            update(orders)
            .where(orders.c.id == bindparam("p_order_id"))
            .values({name: bindparam(f"p_{name}", type_=orders.c[name].type) for name in columns})
            .returning(orders.c.id)
            .cte("moved")
        )
        return (
            insert(events)
            .from_select(
                ["id", "order_id", "status", "message", "data", "audience", "created_at"],
                core_select(
                    bindparam("event_id", type_=events.c.id.type),
                    moved.c.id,
                    bindparam("event_status", type_=events.c.status.type),
                    bindparam("event_message", type_=events.c.message.type),
                    bindparam("event_data", type_=events.c.data.type),
                    bindparam("event_audience", type_=events.c.audience.type),
                    bindparam("event_at", type_=events.c.created_at.type),
                ).select_from(moved),
            )
            .add_cte(moved)
        )

    async def add_event(
        self,
        order_id: str,
        status: OrderStatus,
        message: str,
        data: dict[str, Any],
        *,
        audience: TimelineAudience,
        at: datetime | None = None,
        key: str | None = None,
    ) -> bool:
        """A timeline row for ``audience`` (at ``at``, default now); flushes what is
        staged (``stage``) first. With ``key`` (what the entry is about, derived from the
        step's input), once per order: a retried step whose first write committed (its
        answer lost) adds no second entry. Returns whether it was written."""
        await self.session.flush()
        params = {
            "p_id": new_id(IdPrefix.ORDER_EVENT),
            "p_order_id": order_id,
            "p_status": status,
            "p_message": message,
            "p_data": data,
            "p_key": key,
            "p_audience": audience,
            "p_created_at": at or utcnow(),
        }
        connection = await self.session.connection()
        written = await connection.execute(self._add_event_statement(keyed=key is not None), params)
        return key is None or written.first() is not None

    @staticmethod
    @cache
    def _add_event_statement(*, keyed: bool) -> Insert:
        # Most steps of every order write one (issue #15): built once, without and with
        # its key, on the table (a Core insert, as ``move``'s).
        events = OrderEvent.__table__  # type: ignore[attr-defined]
        statement = pg_insert(events).values(
            {
                name: bindparam(f"p_{name}", type_=events.c[name].type)
                for name in (
                    "id",
                    "order_id",
                    "status",
                    "message",
                    "data",
                    "key",
                    "audience",
                    "created_at",
                )
            }
        )
        if not keyed:
            return statement
        return statement.on_conflict_do_nothing(
            index_elements=["order_id", "key"], index_where=text("key IS NOT NULL")
        ).returning(events.c.id)
