"""Purchase orders: listed for staff, received into stock once. Auto-reorder opens
them when ``inventory.low_stock`` reaches its subscriber (``reorder``)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound
from models.inventory import MovementKind, PurchaseOrder, PurchaseOrderStatus
from services.inventory.purchase_order_repository import PurchaseOrderRepository
from services.inventory.stock import StockService
from services.inventory.stock_repository import StockRepository


class PurchasingService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = PurchaseOrderRepository(session)
        self.stock = StockService(session)
        self.levels = StockRepository(session)

    async def reorder(self, product_id: str) -> bool:
        """Auto-reorder after a low-stock crossing: open a purchase order for the product's
        reorder quantity if it is set up for it, is still below its threshold, and has
        none open (the one-open-purchase-order rule, kept by a partial unique index).
        True if one was opened."""
        product = await self.levels.product(product_id)
        if product is None or not product.auto_reorder or product.reorder_quantity <= 0:
            return False
        stock = await self.levels.stock(product_id)
        if stock is None or stock.available >= stock.threshold:
            # The dip is over by the time the event arrives (the relay was behind, or
            # the delivery retried, while staff restocked or held stock was given back):
            # nothing to reorder. A new dip publishes a new event.
            return False
        return await self.repository.open_unless_open(
            product_id, product.reorder_quantity, "auto-reorder: low stock"
        )

    async def purchase_orders(
        self,
        status: PurchaseOrderStatus | None,
        *,
        product_id: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[PurchaseOrder], int]:
        """Newest first: one page and the total."""
        return await self.repository.page(
            status=status, product_id=product_id, offset=offset, limit=limit
        )

    async def receive(self, purchase_order_id: str) -> PurchaseOrder:
        """Book an open purchase order's quantity into stock as a receipt; once. If the
        product is still below its threshold, ``inventory.low_stock`` goes again (the
        next purchase order, with auto-reorder)."""
        received = await self.repository.mark_received(purchase_order_id)
        po = await self.repository.get(purchase_order_id)
        if po is None:
            raise NotFound(
                f"no purchase order {purchase_order_id}", code="purchase_order_not_found"
            )
        if not received:
            raise Conflict(
                f"purchase order {purchase_order_id} is {po.status}", code="purchase_order_not_open"
            )
        was_low = await self.levels.low_stock_alerted(po.product_id)
        await self.stock.adjust(
            po.product_id,
            po.quantity,
            f"purchase order {po.id}",
            kind=MovementKind.RECEIPT,
            reference=po.id,
        )
        if was_low:
            # Not low before (a crossing now, if any): ``adjust`` has told it already.
            await self.stock.after_receipt(po.product_id)
        return po
