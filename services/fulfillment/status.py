"""Where a fulfilment, and its order, stand: derived from its lines and shipments.

One rule, used after every change (a label bought, a carrier update, a hold released):

- a shipment *counts as shipped* once its label is bought, unless it was cancelled or
  returned to sender (its lines can then go out in another parcel);
- the fulfilment is ``delivered`` when every unit of every line is in a delivered
  shipment, ``shipped`` when every unit is in a shipped one, ``partially_shipped`` when
  some are, otherwise ``in_progress`` once staff created a shipment, else ``open``;
- a hold (``hold_reason``) keeps it ``on_hold`` whatever the parcels do, and a
  cancelled fulfilment stays cancelled. The order follows the shipping progress
  (``partially_shipped`` → ``shipped`` → ``delivered``), forward only, holds or not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from models.fulfillment import (
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
)
from models.orders import OrderStatus

NOT_SHIPPED = frozenset({ShipmentStatus.PENDING, ShipmentStatus.CANCELLED})
# Parcels whose lines are free to go out again.
GIVEN_UP = frozenset({ShipmentStatus.CANCELLED, ShipmentStatus.RETURN_TO_SENDER})
EXCEPTIONS = frozenset({ShipmentStatus.FAILURE, ShipmentStatus.RETURN_TO_SENDER})

# A parcel's statuses in the order a carrier moves through them; an update to an earlier
# one (a late or repeated webhook) never takes a parcel back. Exceptions rank with
# out-for-delivery: a failed attempt may still end delivered, never in transit again.
SHIPMENT_PROGRESS: dict[ShipmentStatus, int] = {
    ShipmentStatus.PENDING: 0,
    ShipmentStatus.LABEL_PURCHASED: 1,
    ShipmentStatus.IN_TRANSIT: 2,
    ShipmentStatus.OUT_FOR_DELIVERY: 3,
    ShipmentStatus.AVAILABLE_FOR_PICKUP: 3,
    ShipmentStatus.FAILURE: 3,
    ShipmentStatus.RETURN_TO_SENDER: 4,
    ShipmentStatus.DELIVERED: 5,
    ShipmentStatus.CANCELLED: 6,
}
FINAL_SHIPMENT_STATUSES = frozenset(
    {ShipmentStatus.DELIVERED, ShipmentStatus.RETURN_TO_SENDER, ShipmentStatus.CANCELLED}
)


def shipment_can_move(current: ShipmentStatus, to: ShipmentStatus) -> bool:
    """Forward only; a final status never changes (a cancel only before the label)."""
    if current == to or current in FINAL_SHIPMENT_STATUSES:
        return False
    if to is ShipmentStatus.CANCELLED:
        return current is ShipmentStatus.PENDING
    return SHIPMENT_PROGRESS[to] > SHIPMENT_PROGRESS[current]


@dataclass(frozen=True)
class LineProgress:
    order_line_id: str
    quantity: int
    in_parcels: int  # in shipments not given up (pending or shipped)
    shipped: int
    delivered: int

    @property
    def unassigned(self) -> int:
        """Units staff can still put in a new shipment."""
        return self.quantity - self.in_parcels


def line_progress(
    lines: Iterable[FulfillmentLine],
    shipments: Iterable[Shipment],
    shipment_lines: Iterable[ShipmentLine],
) -> list[LineProgress]:
    status_of = {s.id: ShipmentStatus(s.status) for s in shipments}
    in_parcels: dict[str, int] = defaultdict(int)
    shipped: dict[str, int] = defaultdict(int)
    delivered: dict[str, int] = defaultdict(int)
    for sl in shipment_lines:
        status = status_of.get(sl.shipment_id)
        if status is None or status in GIVEN_UP:
            continue
        in_parcels[sl.order_line_id] += sl.quantity
        if status not in NOT_SHIPPED:
            shipped[sl.order_line_id] += sl.quantity
        if status is ShipmentStatus.DELIVERED:
            delivered[sl.order_line_id] += sl.quantity
    return [
        LineProgress(
            order_line_id=ln.order_line_id,
            quantity=ln.quantity,
            in_parcels=in_parcels[ln.order_line_id],
            shipped=shipped[ln.order_line_id],
            delivered=delivered[ln.order_line_id],
        )
        for ln in lines
    ]


def shipping_progress(progress: list[LineProgress]) -> FulfillmentStatus | None:
    """``delivered``/``shipped``/``partially_shipped`` from the lines, or None if nothing
    has shipped yet."""
    if not progress:
        return None
    if all(p.delivered >= p.quantity for p in progress):
        return FulfillmentStatus.DELIVERED
    if all(p.shipped >= p.quantity for p in progress):
        return FulfillmentStatus.SHIPPED
    if any(p.shipped > 0 for p in progress):
        return FulfillmentStatus.PARTIALLY_SHIPPED
    return None


def fulfillment_status(
    current: FulfillmentStatus,
    *,
    on_hold: bool,
    has_shipments: bool,
    progress: list[LineProgress],
) -> FulfillmentStatus:
    if current is FulfillmentStatus.CANCELLED:
        return current
    if on_hold:
        return FulfillmentStatus.ON_HOLD
    shipping = shipping_progress(progress)
    if shipping is not None:
        return shipping
    return FulfillmentStatus.IN_PROGRESS if has_shipments else FulfillmentStatus.OPEN


ORDER_STATUS_OF: dict[FulfillmentStatus, OrderStatus] = {
    FulfillmentStatus.PARTIALLY_SHIPPED: OrderStatus.PARTIALLY_SHIPPED,
    FulfillmentStatus.SHIPPED: OrderStatus.SHIPPED,
    FulfillmentStatus.DELIVERED: OrderStatus.DELIVERED,
}


def order_status(progress: list[LineProgress]) -> OrderStatus | None:
    """The order's after-sale status from its parcels (None: still fulfillment_queued)."""
    shipping = shipping_progress(progress)
    return ORDER_STATUS_OF.get(shipping) if shipping is not None else None
