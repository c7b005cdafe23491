"""``inventory.low_stock``: the inventory team's alert email, and auto-reorder.
``inventory.stock_not_put_back``: the inventory team's email to count units in by hand.

``StockService.after_change`` publishes the low-stock event once per crossing of the
threshold (it re-arms when stock climbs back), so one email and at most one reorder per
crossing. ``StockService.put_back`` publishes the other once per order or return line
whose units the stock had no room for.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.settings import Settings
from models.catalog import Product
from services.catalog.errors import ProductNotFound
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from services.inventory.purchasing import PurchasingService
from services.inventory.stock_repository import StockRepository

LOW_STOCK = frozenset({EventType.INVENTORY_LOW_STOCK})
LOW_STOCK_TEMPLATE = "low_stock"
NOT_PUT_BACK = frozenset({EventType.INVENTORY_STOCK_NOT_PUT_BACK})
NOT_PUT_BACK_TEMPLATE = "stock_not_put_back"


def low_stock_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email ``INVENTORY_ALERT_EMAIL`` with the product, its stock and its threshold."""
    name = "low_stock_alert"

    async def email_inventory_team(event: DomainEvent, session: AsyncSession) -> None:
        product = await _product(session, event)
        base = settings.api_base_url
        await _email_inventory_team(
            emails,
            settings,
            key=f"{name}:{event.id}",
            template=LOW_STOCK_TEMPLATE,
            product=product,
            context={
                # The figures of the crossing, not of now: the email says what set it off.
                "current_stock": int(event.data["currentStock"]),
                "threshold": int(event.data["threshold"]),
                "reorder_quantity": product.reorder_quantity if product.auto_reorder else 0,
                "purchase_orders_url": f"{base}/api/purchase-orders?productId={product.id}",
            },
        )

    return Subscriber(name, LOW_STOCK, email_inventory_team)


def stock_not_put_back_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email ``INVENTORY_ALERT_EMAIL`` how many units of which product came back (an
    undone order, a return) and were left off the stock, to count in by hand."""
    name = "stock_not_put_back_alert"

    async def email_inventory_team(event: DomainEvent, session: AsyncSession) -> None:
        product = await _product(session, event)
        data = event.data
        base = settings.api_base_url
        order_id = str(data["orderId"])
        return_id = str(data["returnId"]) if data.get("returnId") else None
        await _email_inventory_team(
            emails,
            settings,
            key=f"{name}:{event.id}",
            template=NOT_PUT_BACK_TEMPLATE,
            product=product,
            context={
                "quantity": int(data["quantity"]),
                "limit": int(data["limit"]),
                "order_id": order_id,
                "return_id": return_id,
                "adjust_url": f"{base}/api/inventory/{product.id}/adjust",
                "order_url": f"{base}/api/orders/{order_id}",
                "return_url": f"{base}/api/admin/returns/{return_id}" if return_id else None,
            },
        )

    return Subscriber(name, NOT_PUT_BACK, email_inventory_team)


async def _product(session: AsyncSession, event: DomainEvent) -> Product:
    """The event's product; gone since the event, there is nothing to alert about (a
    business error: the dead letter says why)."""
    product_id = str(event.data["productId"])
    product = await StockRepository(session).product(product_id)
    if product is None:
        raise ProductNotFound(f"no product {product_id}")
    return product


async def _email_inventory_team(
    emails: EmailService,
    settings: Settings,
    *,
    key: str,
    template: str,
    product: Product,
    context: dict[str, Any],
) -> None:
    """One email about ``product`` to ``INVENTORY_ALERT_EMAIL``: its name, SKU, id and
    staff link, and ``context``."""
    await emails.deliver(
        # The ledger makes this once-only, even if the provider's answer was lost.
        key=key,
        template=template,
        to=settings.inventory_alert_email,
        context={
            "product_id": product.id,
            "product_name": product.name,
            "sku": product.sku,
            "staff_url": f"{settings.api_base_url}/api/inventory/{product.id}",
        }
        | context,
    )


def auto_reorder() -> Subscriber:
    """Open a purchase order for a product set up to reorder, unless one is open.

    A database effect through the handler's session: it commits with the delivery's
    receipt, so a redelivered event opens nothing; the partial unique index on open
    purchase orders keeps one open per product even across crossings."""

    async def reorder(event: DomainEvent, session: AsyncSession) -> None:
        await PurchasingService(session).reorder(str(event.data["productId"]))

    return Subscriber("auto_reorder", LOW_STOCK, reorder)
