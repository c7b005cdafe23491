"""The purchase orders' SQL: opened once per product, received once, listed."""

from __future__ import annotations

from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.inventory import PurchaseOrder, PurchaseOrderStatus


class PurchaseOrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_unless_open(self, product_id: str, quantity: int, reason: str) -> bool:
        """Open a purchase order, unless the product has one open already (a partial
        unique index decides, so concurrent callers never double up); True if opened."""
        opened = await self.session.exec(
            pg_insert(PurchaseOrder)
            .values(
                id=new_id(IdPrefix.PURCHASE_ORDER),
                product_id=product_id,
                quantity=quantity,
                status=PurchaseOrderStatus.OPEN,
                reason=reason,
            )
            .on_conflict_do_nothing(
                index_elements=["product_id"], index_where=text("status = 'open'")
            )
            .returning(col(PurchaseOrder.id))
        )
        return opened.first() is not None

    async def mark_received(self, purchase_order_id: str) -> bool:
        """Open → received, once; False if it was not open (or does not exist)."""
        result = await self.session.exec(
            update(PurchaseOrder)
            .where(
                col(PurchaseOrder.id) == purchase_order_id,
                col(PurchaseOrder.status) == PurchaseOrderStatus.OPEN,
            )
            .values(status=PurchaseOrderStatus.RECEIVED, received_at=utcnow())
            .returning(col(PurchaseOrder.id))
        )
        return result.first() is not None

    async def get(self, purchase_order_id: str) -> PurchaseOrder | None:
        # As committed (``mark_received`` may have changed a copy the session holds):
        # one SELECT, where ``get`` then ``refresh`` made two for a row not loaded yet.
        return await self.session.get(PurchaseOrder, purchase_order_id, populate_existing=True)

    async def page(
        self,
        *,
        status: PurchaseOrderStatus | None,
        product_id: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[PurchaseOrder], int]:
        """Newest first, one page, and how many there are in all."""
        conditions = []
        if status is not None:
            conditions.append(col(PurchaseOrder.status) == status)
        if product_id is not None:
            conditions.append(col(PurchaseOrder.product_id) == product_id)
        rows = await self.session.exec(
            select(PurchaseOrder)
            .where(*conditions)
            .order_by(col(PurchaseOrder.created_at).desc(), col(PurchaseOrder.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(
            select(func.count()).select_from(PurchaseOrder).where(*conditions)
        )
        return list(rows.all()), int(total.one())
