"""The stock's SQL: levels and their ledger, the low-stock list and its alert flag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Table,
    Update,
    and_,
    bindparam,
    cast,
    func,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import insert_rows, locked
from core.events import EventType
from core.ids import IdPrefix, new_id
from core.outbox import publish
from models.base import utcnow
from models.catalog import Product
from models.inventory import MAX_STOCK, MovementKind, StockLevel, StockMovement

ON_HAND = col(StockLevel.on_hand)
RESERVED = col(StockLevel.reserved)
AVAILABLE = ON_HAND - RESERVED
# A product (not deleted) whose available stock, 0 without a stock row, is below its
# threshold: the low-stock list and its count in /metrics.
_BELOW_THRESHOLD = and_(
    col(Product.deleted_at).is_(None),
    func.coalesce(AVAILABLE, 0) < Product.low_stock_threshold,
)
_STOCK_LEVELS: Table = SQLModel.metadata.tables[StockLevel.__tablename__]
_AVAILABLE_BY_IDS = (
    "SELECT product_id, on_hand - reserved, revision FROM stock_levels"
    " WHERE product_id = ANY($1::varchar[])"
)


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
        rows = [{"product_id": p, "on_hand": 0, "reserved": 0} for p in product_ids]
        await insert_rows(self.session, self._ensure_statement(), rows)

    # Every order's reservation: built once, not a multi-VALUES statement compiled at
    # every call (``core.db.insert_rows``, issue #15).
    @staticmethod
    @cache
    def _ensure_statement() -> ReturningInsert[tuple[str]]:
        levels = StockLevel.__table__  # type: ignore[attr-defined]
        return (
            pg_insert(levels)
            .on_conflict_do_nothing(index_elements=["product_id"])
            .returning(levels.c.product_id)
        )

    async def receive_many(self, quantities: Mapping[str, int], reason: str) -> None:
        """``quantities`` on hand more, by product, each with its receipt on the ledger, as
        ``change`` and ``record`` write one: one multi-row statement for the levels (a
        row created where there is none) and one for the ledger, whatever the count."""
        if not quantities:
            return
        now = utcnow()
        levels = [
            {"product_id": p, "on_hand": q, "reserved": 0, "updated_at": now}
            for p, q in quantities.items()
        ]
        await insert_rows(self.session, self._receive_statement(), levels)
        receipts = [
            {
                "id": new_id(IdPrefix.MOVEMENT),
                "product_id": p,
                "kind": MovementKind.RECEIPT.value,
                "on_hand_delta": q,
                "reserved_delta": 0,
                "reason": reason,
                "reference": None,
                "created_at": now,
            }
            for p, q in quantities.items()
        ]
        await insert_rows(self.session, self._ledger_statement(), receipts)

    # A bulk load's, chunk after chunk: built once (``core.db.insert_rows``).
    @staticmethod
    @cache
    def _receive_statement() -> ReturningInsert[tuple[str]]:
        insert = pg_insert(_STOCK_LEVELS)
        return insert.on_conflict_do_update(
            index_elements=["product_id"],
            set_={
                "on_hand": _STOCK_LEVELS.c.on_hand + insert.excluded.on_hand,
                "updated_at": insert.excluded.updated_at,
            },
        ).returning(_STOCK_LEVELS.c.product_id)

    @staticmethod
    @cache
    def _ledger_statement() -> ReturningInsert[tuple[str]]:
        movements: Table = SQLModel.metadata.tables[StockMovement.__tablename__]
        return pg_insert(movements).returning(movements.c.id)

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
        """Available stock by product (0 for a product without a stock row).

        Every catalogue read (listing, search, detail) asks this, even when its page came
        from the cache: it goes to asyncpg directly, one prepared statement for any number
        of ids, at under half the CPU of the same read through SQLAlchemy's execution
        (0.2 against 0.4-0.5 ms, most of a cached product detail's database work). Same
        connection, so inside a transaction that has begun it reads that transaction."""
        revised = await self.available_revisions(product_ids)
        return {p: available for p, (available, _) in revised.items()}

    async def available_revisions(self, product_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Available stock and the row's revision (what orders its changes: migration
        f15c0de00040) by product; ``(0, 0)`` for a product without a stock row."""
        if not product_ids:
            return {}
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        rows = await driver.fetch(_AVAILABLE_BY_IDS, list(product_ids))
        found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
        return {p: found.get(p, (0, 0)) for p in product_ids}

    async def change(
        self,
        product_id: str,
        *,
        on_hand: int = 0,
        reserved: int = 0,
        guard_available: int | None = None,
    ) -> bool:
        """Apply deltas atomically; with ``guard_available``, only if at least that much is
        available. False (and nothing changed) when a guard or constraint refuses, or
        when the stock would pass what its integer columns hold (``overflows`` tells):
        the sums are checked as bigints, so PostgreSQL's integer overflow never aborts
        the transaction."""
        params: dict[str, object] = {
            "p_product_id": product_id,
            "p_on_hand": on_hand,
            "p_reserved": reserved,
            "p_updated_at": utcnow(),
        }
        if guard_available is not None:
            params["p_guard_available"] = guard_available
        connection = await self.session.connection()
        result = await connection.execute(
            self._change_statement(guarded=guard_available is not None), params
        )
        row = result.first()
        if row is None:
            return False
        now_available = int(row[0])
        if (now_available > 0) != (now_available - (on_hand - reserved) > 0):
            # In or out of stock: the search index's inStock filter re-reads it. Under the
            # stock row's lock, so this product's events commit in seq order.
            await publish(self.session, EventType.PRODUCT_CHANGED, product_id, {"reason": "stock"})
        return True

    # Every reservation, commit and release of every order line changes stock: built once
    # (with and without the guard), with bind parameters, on the table (no row of it is
    # ever held as an object), SQLAlchemy reuses its memoised cache key (issue #15).
    @staticmethod
    @cache
    def _change_statement(*, guarded: bool) -> Update:
        stock = _STOCK_LEVELS.c
        on_hand = bindparam("p_on_hand", type_=Integer)
        reserved = bindparam("p_reserved", type_=Integer)
        new_on_hand = cast(stock.on_hand, BigInteger) + on_hand
        new_reserved = cast(stock.reserved, BigInteger) + reserved
        available = stock.on_hand - stock.reserved
        conditions: list[ColumnElement[bool]] = [
            stock.product_id == bindparam("p_product_id"),
            new_on_hand >= 0,
            new_on_hand <= MAX_STOCK,
            new_reserved >= 0,
            new_reserved <= new_on_hand,
        ]
        if guarded:
            conditions.append(available >= bindparam("p_guard_available", type_=Integer))
        return (
            update(_STOCK_LEVELS)
            .where(and_(*conditions))
            .values(
                on_hand=stock.on_hand + on_hand,
                reserved=stock.reserved + reserved,
                updated_at=bindparam("p_updated_at", type_=stock.updated_at.type),
            )
            .returning(available)
        )

    async def lock(self, product_id: str) -> None:
        """The product's stock row locked for this transaction (its events are published
        under it, so that they commit in ``seq`` order), when no change took the lock."""
        await self.session.exec(
            locked(select(StockLevel.product_id).where(col(StockLevel.product_id) == product_id))
        )

    async def overflows(self, product_id: str, *, on_hand: int) -> bool:
        """Would adding ``on_hand`` pass the most stock a row holds (``MAX_STOCK``)? Asked
        after ``change`` refused, to tell that from too little stock."""
        row = (
            await self.session.exec(
                select(StockLevel.on_hand).where(col(StockLevel.product_id) == product_id)
            )
        ).first()
        return (row or 0) + on_hand > MAX_STOCK

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
        query = (
            select(Product.id, Product.low_stock_threshold, StockLevel.on_hand, StockLevel.reserved)
            .outerjoin(StockLevel, col(StockLevel.product_id) == col(Product.id))
            .where(_BELOW_THRESHOLD)
        )
        rows = await self.session.exec(
            query.order_by(func.coalesce(available, 0), col(Product.id)).offset(offset).limit(limit)
        )
        return [Stock(r[0], r[2] or 0, r[3] or 0, r[1]) for r in rows.all()], await self.low_count()

    async def low_count(self) -> int:
        """How many products are below their threshold now (``low``'s total)."""
        total = await self.session.exec(
            select(func.count())
            .select_from(Product)
            .outerjoin(StockLevel, col(StockLevel.product_id) == col(Product.id))
            .where(_BELOW_THRESHOLD)
        )
        return int(total.one())

    async def flag_low(self, product_id: str) -> int | None:
        """Set the alert flag to whether the product is below its threshold, in one
        statement (a crossing either way, not one statement for each way, issue #15): the
        available count when it just fell below (the flag was clear); None when it is not
        low, was flagged already, or climbed back to its threshold (the flag cleared)."""
        connection = await self.session.connection()
        changed = await connection.execute(self._flag_low_statement(), {"p_product_id": product_id})
        row = changed.first()
        return int(row[1]) if row is not None and row[0] else None

    @staticmethod
    @cache
    def _flag_low_statement() -> Update:
        # After every stock change of every order line: built once, as ``change`` is.
        stock = _STOCK_LEVELS.c
        threshold = (
            select(Product.low_stock_threshold)
            .where(Product.id == bindparam("p_product_id"))
            .scalar_subquery()
        )
        available = stock.on_hand - stock.reserved
        low = threshold > available
        return (
            update(_STOCK_LEVELS)
            .where(
                stock.product_id == bindparam("p_product_id"),
                threshold.is_not(None),
                stock.low_stock_alerted.is_distinct_from(low),
            )
            .values(low_stock_alerted=low)
            .returning(stock.low_stock_alerted, available)
        )

    async def low_stock_alerted(self, product_id: str) -> bool:
        """Whether the product's low-stock alert is raised (it fell below its threshold
        and has not climbed back since)."""
        result = await self.session.exec(
            select(StockLevel.low_stock_alerted).where(StockLevel.product_id == product_id)
        )
        return bool(result.first())

    async def product(self, product_id: str) -> Product | None:
        """The product's row whatever its state (the alert and reorder terms live there)."""
        return await self.session.get(Product, product_id)
