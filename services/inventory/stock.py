"""Stock levels and their ledger: adjustments, low stock, and the ``inventory.low_stock``
event a fall below a product's threshold publishes (its subscribers email the inventory
team and auto-reorder: ``services/events/handlers/inventory.py``), and the
``inventory.stock_not_put_back`` event of units coming back that the stock has no room
for (its subscriber emails the inventory team)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, ValueOutOfRange
from core.events import EventType
from core.outbox import publish
from models.inventory import MAX_STOCK, MovementKind, StockMovement
from services.catalog.errors import ProductNotFound
from services.inventory.stock_repository import Stock, StockRepository


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    title = "The adjustment would make stock negative"


class StockService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.stock = StockRepository(session)

    async def get(self, product_id: str) -> Stock:
        stock = await self.stock.stock(product_id)
        if stock is None:
            raise ProductNotFound(f"no product {product_id}")
        return stock

    async def low(self, *, offset: int, limit: int) -> tuple[list[Stock], int]:
        """Products whose available stock is below their threshold, lowest first."""
        return await self.stock.low(offset=offset, limit=limit)

    async def low_count(self) -> int:
        """How many products are below their threshold now."""
        return await self.stock.low_count()

    async def movements(
        self, product_id: str, *, offset: int, limit: int
    ) -> tuple[list[StockMovement], int]:
        """The product's ledger, newest first."""
        return await self.stock.movements(product_id, offset=offset, limit=limit)

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
        is on hand and not reserved, 422 ``invalid_value`` and no change if it would pass
        the most a product holds (staff's adjustment or purchase order's receipt onto
        nearly full stock). Units coming back in a worker's step take ``put_back``."""
        stock = await self.get(product_id)
        await self.stock.ensure_rows([product_id])
        if not await self.stock.change(product_id, on_hand=delta):
            await self.refuse_overflow(product_id, delta)
            raise InsufficientStock(
                f"removing {-delta} would leave negative or less than the reserved stock "
                f"(on hand {stock.on_hand}, reserved {stock.reserved})",
                onHand=stock.on_hand,
                reserved=stock.reserved,
            )
        self.stock.record(product_id, kind, on_hand=delta, reason=reason, reference=reference)
        await self.after_change(product_id)
        return await self.get(product_id)

    async def receive_many(self, quantities: Mapping[str, int], reason: str) -> None:
        """Opening stock for products a bulk load has just added (``shop seed``): each
        quantity received as ``adjust`` receives one (a ``receipt`` on the ledger), in
        one statement per table for any number of products. Quantities of 0 are left
        out (the product has no stock, as one never received). No low-stock alert is
        raised for one received below its threshold: the alert is for a crossing, so, as
        for a product without stock, its next change raises it. Each quantity must fit
        the stock (``MAX_STOCK``, 422 ``invalid_value``)."""
        for product_id, quantity in quantities.items():
            if not 0 <= quantity <= MAX_STOCK:
                raise ValueOutOfRange(
                    f"{quantity} is not a quantity the stock of {product_id} holds",
                    productId=product_id,
                    limit=MAX_STOCK,
                )
        received = {p: q for p, q in quantities.items() if q > 0}
        await self.stock.receive_many(received, reason)

    async def put_back(
        self,
        product_id: str,
        quantity: int,
        *,
        reason: str,
        reference: str,
        order_id: str,
        return_id: str | None = None,
    ) -> bool:
        """Units coming back on hand in a worker's step that must finish (an undone order's
        sold stock, a return's undamaged units): a ``return`` movement. True if they were
        counted in. When they would pass the most a product holds (``MAX_STOCK``: staff
        topped the stock up meanwhile) they are not, and nothing raises: a ``return``
        movement of 0 with ``reason`` and why (``not_put_back_note``) says how many staff
        have to count in by hand (an adjustment) once there is room, and
        ``inventory.stock_not_put_back`` tells them (its subscriber emails the inventory
        team); False. Refusing instead would retry an order's undo for ever, or fail a
        return with its refund. Once per call: callers call once per order line or return
        line (a repeat of their step finds it done), so the event is written once."""
        await self.stock.ensure_rows([product_id])
        if not await self.stock.change(product_id, on_hand=quantity):
            await self.stock.lock(product_id)
            self.stock.record(
                product_id,
                MovementKind.RETURN,
                reason=f"{reason}: {not_put_back_note(quantity)}",
                reference=reference,
            )
            await publish(
                self.session,
                EventType.INVENTORY_STOCK_NOT_PUT_BACK,
                product_id,
                {
                    "productId": product_id,
                    "quantity": quantity,
                    "limit": MAX_STOCK,
                    "orderId": order_id,
                    "returnId": return_id,
                    "reference": reference,
                },
            )
            return False
        self.stock.record(
            product_id, MovementKind.RETURN, on_hand=quantity, reason=reason, reference=reference
        )
        await self.after_change(product_id)
        return True

    async def refuse_overflow(self, product_id: str, delta: int) -> None:
        """After ``change`` refused: 422 ``invalid_value`` if adding ``delta`` would pass
        the most stock a product holds (``MAX_STOCK``)."""
        if delta > 0 and await self.stock.overflows(product_id, on_hand=delta):
            raise ValueOutOfRange(
                f"adding {delta} to the stock of {product_id} would pass the most a product "
                f"holds ({MAX_STOCK:,})",
                productId=product_id,
                limit=MAX_STOCK,
            )

    async def after_change(self, product_id: str) -> None:
        """``inventory.low_stock`` once per crossing; re-arm when stock climbs back."""
        available = await self.stock.flag_low(product_id)
        if available is None:
            return
        product = await self.stock.product(product_id)
        assert product is not None
        await self._publish_low(product_id, available, product.low_stock_threshold)

    async def after_receipt(self, product_id: str) -> bool:
        """A purchase order received (after ``adjust``) for a product already alerted,
        which leaves it below its threshold: the dip goes on, but what answered it has
        arrived. No crossing, so
        ``after_change`` says nothing; ``inventory.low_stock`` goes again, so that the team
        hears and auto-reorder (which keeps one purchase order open) opens the next one.
        Without it a product whose reorder quantity did not lift it above its threshold
        was never reordered again. True if it was published."""
        stock = await self.get(product_id)
        if stock.available >= stock.threshold:
            return False
        await self._publish_low(product_id, stock.available, stock.threshold)
        return True

    async def _publish_low(self, product_id: str, available: int, threshold: int) -> None:
        await publish(
            self.session,
            EventType.INVENTORY_LOW_STOCK,
            product_id,
            {"productId": product_id, "currentStock": available, "threshold": threshold},
        )


def not_put_back_note(quantity: int) -> str:
    """Why units that came back are not on hand: what ``StockService.put_back`` writes on
    its ledger entry and callers on the order's timeline."""
    return (
        f"{quantity} not put back on hand: it would pass the most a product holds "
        f"({MAX_STOCK:,}); count them in by hand (an adjustment) once there is room"
    )
