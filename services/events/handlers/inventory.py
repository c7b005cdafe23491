"""``inventory.low_stock``: the inventory team's alert email, and auto-reorder.

``StockService.after_change`` publishes the event once per crossing of the threshold
(it re-arms when stock climbs back), so one email and at most one reorder per crossing.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.settings import Settings
from services.catalog.errors import ProductNotFound
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from services.inventory.purchasing import PurchasingService
from services.inventory.repositories import StockRepository

LOW_STOCK = frozenset({EventType.INVENTORY_LOW_STOCK})
LOW_STOCK_TEMPLATE = "low_stock"


def low_stock_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email ``INVENTORY_ALERT_EMAIL`` with the product, its stock and its threshold."""
    name = "low_stock_alert"

    async def email_inventory_team(event: DomainEvent, session: AsyncSession) -> None:
        product_id = str(event.data["productId"])
        product = await StockRepository(session).product(product_id)
        if product is None:
            # Gone since the event: nothing to alert about (a dead letter says why).
            raise ProductNotFound(f"no product {product_id}")
        base = settings.api_base_url
        await emails.deliver(
            # The ledger makes this once-only, even if the provider's answer was lost.
            key=f"{name}:{event.id}",
            template=LOW_STOCK_TEMPLATE,
            to=settings.inventory_alert_email,
            context={
                "product_id": product.id,
                "product_name": product.name,
                "sku": product.sku,
                # The figures of the crossing, not of now: the email says what set it off.
                "current_stock": int(event.data["currentStock"]),
                "threshold": int(event.data["threshold"]),
                "reorder_quantity": product.reorder_quantity if product.auto_reorder else 0,
                "staff_url": f"{base}/api/inventory/{product.id}",
                "purchase_orders_url": f"{base}/api/purchase-orders?productId={product.id}",
            },
        )

    return Subscriber(name, LOW_STOCK, email_inventory_team)


def auto_reorder() -> Subscriber:
    """Open a purchase order for a product set up to reorder, unless one is open.

    A database effect through the handler's session: it commits with the delivery's
    receipt, so a redelivered event opens nothing; the partial unique index on open
    purchase orders keeps one open per product even across crossings."""

    async def reorder(event: DomainEvent, session: AsyncSession) -> None:
        await PurchasingService(session).reorder(str(event.data["productId"]))

    return Subscriber("auto_reorder", LOW_STOCK, reorder)
