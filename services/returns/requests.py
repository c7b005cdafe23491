"""A customer's return request, checked against what was delivered, and the views.

Per order line: the delivered units are those in shipments the carrier delivered; the
line's delivery is the latest of those shipments' ``delivered_at`` (the window runs from
it); the units already returned are those of the order's other returns that are not
declined or cancelled (a return received counts what came back, one still open what it
asked for). The order row is locked, so two requests for the same units run one at a
time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from models.base import utcnow
from models.fulfillment import ShipmentStatus
from models.orders import Order, OrderLine, TimelineAudience
from models.returns import (
    ReturnCreate,
    ReturnLine,
    ReturnLinePublic,
    ReturnPublic,
    ReturnRequest,
    ReturnStatus,
)
from models.workflow_starts import WorkflowStart
from services.fulfillment.repository import FulfillmentRepository
from services.order_repository import OrderNotFound, OrderRepository
from services.returns.errors import (
    LineNotDelivered,
    OrderNotDelivered,
    ReturnQuantityExceedsDelivered,
    ReturnWindowClosed,
    UnknownOrderLine,
)
from services.returns.repository import ReturnNotFound, ReturnRepository
from temporal.clients.returns import ReturnWorkflows
from workflows.types.returns import ReturnInput, ReturnLineRef

# Returns that no longer hold any units.
ENDED_WITHOUT_GOODS = frozenset({ReturnStatus.DECLINED, ReturnStatus.CANCELLED})
# Returns whose goods were counted at the warehouse.
COUNTED = frozenset({ReturnStatus.RECEIVED, ReturnStatus.REFUNDED, ReturnStatus.CLOSED})


@dataclass(frozen=True)
class Delivered:
    quantity: int
    last_delivered_at: datetime


def units_held(request: ReturnRequest, line: ReturnLine) -> int:
    """How many units of the order line this return takes back (or may still)."""
    if request.status in ENDED_WITHOUT_GOODS:
        return 0
    if request.status in COUNTED:
        return line.received_quantity + line.damaged_quantity
    return line.quantity


class ReturnService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.returns = ReturnRepository(session)
        self.orders = OrderRepository(session)

    # --- requesting -------------------------------------------------------------------

    async def request(
        self, user_id: str, order_id: str, body: ReturnCreate
    ) -> tuple[ReturnRequest, WorkflowStart]:
        order = await self.orders.get(order_id, lock=True)
        if order is None or order.user_id != user_id:
            raise OrderNotFound(f"no order {order_id}")
        lines = {ln.id: ln for ln in await self.orders.lines(order.id)}
        delivered = await self.delivered(order.id)
        if not delivered:
            raise OrderNotDelivered(f"nothing of order {order.id} has been delivered yet")
        held = await self.units_returned(order.id)
        wanted: dict[str, int] = defaultdict(int)
        for asked in body.lines:
            wanted[self._resolve(asked.order_line_id, asked.product_id, lines)] += asked.quantity
        now = utcnow()
        window = timedelta(days=self.settings.return_window_days)
        for line_id, quantity in wanted.items():
            got = delivered.get(line_id)
            if got is None:
                raise LineNotDelivered(
                    f"order line {line_id} has not been delivered", orderLineId=line_id
                )
            if now > got.last_delivered_at + window:
                raise ReturnWindowClosed(
                    f"order line {line_id} was delivered on {got.last_delivered_at:%Y-%m-%d}; "
                    f"returns close {self.settings.return_window_days} days after delivery",
                    orderLineId=line_id,
                    deliveredAt=got.last_delivered_at.isoformat(),
                    windowDays=self.settings.return_window_days,
                )
            returnable = got.quantity - held.get(line_id, 0)
            if quantity > returnable:
                raise ReturnQuantityExceedsDelivered(
                    f"order line {line_id}: {quantity} asked, {max(returnable, 0)} returnable",
                    orderLineId=line_id,
                    requested=quantity,
                    delivered=got.quantity,
                    alreadyReturned=held.get(line_id, 0),
                )
        request = ReturnRequest(
            order_id=order.id,
            user_id=order.user_id,
            status=ReturnStatus.REQUESTED,
            reason=body.reason,
            note=body.note,
            currency=order.currency,
        )
        rows = [
            ReturnLine(
                return_id=request.id,
                order_line_id=line_id,
                product_id=lines[line_id].product_id,
                quantity=quantity,
            )
            for line_id, quantity in wanted.items()
        ]
        await self.returns.add(request, rows)
        await self._announce(order, request, rows)
        start = ReturnWorkflows.request_start(
            self.session,
            ReturnInput(
                return_id=request.id,
                order_id=order.id,
                user_id=order.user_id,
                reason=body.reason,
                lines=[ReturnLineRef(return_line_id=r.id, quantity=r.quantity) for r in rows],
                auto_approve=str(body.reason) in self.settings.auto_approve_reasons,
                ship_by_seconds=self.settings.return_ship_by_days * 86400.0,
            ),
        )
        return request, start

    @staticmethod
    def _resolve(line_id: str | None, product_id: str | None, lines: dict[str, OrderLine]) -> str:
        if line_id is not None:
            if line_id not in lines or (
                product_id is not None and lines[line_id].product_id != product_id
            ):
                raise UnknownOrderLine(f"the order has no line {line_id}", orderLineId=line_id)
            return line_id
        matches = [ln.id for ln in lines.values() if ln.product_id == product_id]
        if len(matches) != 1:
            raise UnknownOrderLine(
                f"the order has no single line of product {product_id}; give orderLineId",
                productId=product_id,
            )
        return matches[0]

    async def _announce(self, order: Order, request: ReturnRequest, rows: list[ReturnLine]) -> None:
        await publish(
            self.session,
            EventType.RETURN_REQUESTED,
            order.id,
            {
                "returnId": request.id,
                "orderId": order.id,
                "userId": order.user_id,
                "reason": str(request.reason),
                "autoApprove": str(request.reason) in self.settings.auto_approve_reasons,
                "lines": [
                    {"returnLineId": r.id, "orderLineId": r.order_line_id, "quantity": r.quantity}
                    for r in rows
                ],
            },
        )
        await self.orders.add_event(
            order.id,
            order.status,
            "return requested",
            {"returnId": request.id},
            audience=TimelineAudience.CUSTOMER,
        )

    async def delivered(self, order_id: str) -> dict[str, Delivered]:
        """Per order line: units in delivered shipments and the latest delivery."""
        repo = FulfillmentRepository(self.session)
        shipments = {
            s.id: s
            for s in await repo.shipments_of_order(order_id)
            if s.status == ShipmentStatus.DELIVERED
        }
        found: dict[str, Delivered] = {}
        for line in await repo.shipment_lines(list(shipments)):
            when = (
                shipments[line.shipment_id].delivered_at or shipments[line.shipment_id].updated_at
            )
            before = found.get(line.order_line_id)
            found[line.order_line_id] = Delivered(
                quantity=line.quantity + (before.quantity if before else 0),
                last_delivered_at=max(when, before.last_delivered_at) if before else when,
            )
        return found

    async def units_returned(self, order_id: str) -> dict[str, int]:
        """Per order line: units the order's returns take back (see ``units_held``)."""
        requests = {r.id: r for r in await self.returns.for_order(order_id)}
        held: dict[str, int] = defaultdict(int)
        for line in await self.returns.lines(list(requests)):
            held[line.order_line_id] += units_held(requests[line.return_id], line)
        return dict(held)

    # --- reading ----------------------------------------------------------------------

    async def get(self, return_id: str, *, user_id: str | None = None) -> ReturnRequest:
        """The return; with ``user_id``, only if it is that customer's (404 otherwise)."""
        found = await self.returns.get(return_id)
        if found is None or (user_id is not None and found.user_id != user_id):
            raise ReturnNotFound(f"no return {return_id}")
        return found

    async def of_order(self, order_id: str, *, user_id: str | None) -> list[ReturnPublic]:
        order = await self.orders.get(order_id)
        if order is None or (user_id is not None and order.user_id != user_id):
            raise OrderNotFound(f"no order {order_id}")
        return await self.public_many(await self.returns.for_order(order_id))

    async def page(
        self, *, status: ReturnStatus | None, order_id: str | None, offset: int, limit: int
    ) -> tuple[list[ReturnPublic], int]:
        rows, total = await self.returns.page(
            status=status, order_id=order_id, offset=offset, limit=limit
        )
        return await self.public_many(rows), total

    async def public(self, request: ReturnRequest) -> ReturnPublic:
        return (await self.public_many([request]))[0]

    async def public_many(self, requests: list[ReturnRequest]) -> list[ReturnPublic]:
        lines = await self.returns.lines([r.id for r in requests])
        names: dict[str, str] = {}
        for order_id in {r.order_id for r in requests}:
            names |= {ln.id: ln.name for ln in await self.orders.lines(order_id)}
        by_return: dict[str, list[ReturnLinePublic]] = defaultdict(list)
        for line in lines:
            by_return[line.return_id].append(
                ReturnLinePublic(
                    id=line.id,
                    order_line_id=line.order_line_id,
                    product_id=line.product_id,
                    name=names.get(line.order_line_id),
                    quantity=line.quantity,
                    received_quantity=line.received_quantity,
                    damaged_quantity=line.damaged_quantity,
                )
            )
        return [
            ReturnPublic.model_validate(
                {k: getattr(r, k) for k in ReturnPublic.model_fields if k != "lines"}
                | {"lines": by_return[r.id]}
            )
            for r in requests
        ]
