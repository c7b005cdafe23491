"""A customer's order with lines, as checkout writes it, for fulfilment tests."""

from __future__ import annotations

from uuid import uuid4

from sqlmodel.ext.asyncio.session import AsyncSession

from models.orders import Order, OrderLine, OrderStatus
from tests.events.customers import create_customer

ADDRESS = {
    "name": "Ada Lovelace",
    "street": "123 Main St",
    "city": "Boston",
    "state": "MA",
    "zip": "02101",
    "country": "US",
}


async def queued_order(
    session: AsyncSession,
    quantities: tuple[int, ...] = (2, 1),
    *,
    names: tuple[str, ...] | None = None,
    email: str | None = None,
) -> tuple[Order, list[OrderLine]]:
    """An order handed to fulfilment (``fulfillment_queued``) with one line per quantity
    (named ``names``, else ``Item n``), for a new customer (at ``email`` if given)."""
    user = await create_customer(session, email=email)
    order = Order(
        user_id=user.id,
        cart_id=f"cart_{uuid4().hex[:20]}",
        email=user.email,
        status=OrderStatus.FULFILLMENT_QUEUED,
        total=4999,
        subtotal=4999,
        shipping_address=ADDRESS,
        payment_method_type="card",
        payment_token="pm_card_visa",
    )
    session.add(order)
    await session.flush()
    lines = [
        OrderLine(
            order_id=order.id,
            product_id=f"prod_{uuid4().hex[:12]}",
            name=names[n] if names else f"Item {n}",
            sku=f"SKU-{n}",
            quantity=quantity,
            list_price=1000,
            unit_price=1000,
            line_total=1000 * quantity,
        )
        for n, quantity in enumerate(quantities)
    ]
    session.add_all(lines)
    await session.flush()
    return order, lines
