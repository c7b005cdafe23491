"""What a return's step tells: the order's timeline entries and the payload of the
return's event (with what its email needs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models.orders import TimelineAudience
from models.returns import ReturnRequest
from services.order_repository import OrderRepository


async def announced(
    session: AsyncSession,
    request: ReturnRequest,
    message: str,
    data: dict[str, Any],
    *,
    audience: TimelineAudience,
    notes: Sequence[tuple[str, dict[str, Any]]] = (),
) -> tuple[str, dict[str, Any]]:
    """The order id and payload of a return's event (with what its email needs), and
    the order's timeline entry for ``audience``, then a staff-only one per ``notes`` (a
    message and its data: what staff have to see, as units not put back on hand); the
    caller publishes it."""
    orders = OrderRepository(session)
    order = await orders.require(request.order_id)
    await orders.add_event(
        order.id, order.status, message, {"returnId": request.id}, audience=audience
    )
    for note, noted in notes:
        await orders.add_event(
            order.id,
            order.status,
            note,
            {"returnId": request.id, **noted},
            audience=TimelineAudience.STAFF,
        )
    return order.id, {
        "returnId": request.id,
        "orderId": order.id,
        "userId": order.user_id,
        "email": order.email,
        "reason": str(request.reason),
        **data,
    }
