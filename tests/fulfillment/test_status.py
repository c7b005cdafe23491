"""``services.fulfillment.status``: where a fulfilment and its order stand, from the
parcels (table tests)."""

from __future__ import annotations

import pytest

from models.fulfillment import (
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
)
from models.orders import OrderStatus
from services.fulfillment.service import parcel_states
from services.fulfillment.status import (
    fulfillment_status,
    line_progress,
    order_status,
    shipment_can_move,
)
from workflows.fulfillment_parcels import parcels_status
from workflows.types.fulfillment_orders import LineQuantity

F, S, OS = FulfillmentStatus, ShipmentStatus, OrderStatus
# Two lines: A (2 units) and B (1 unit).
LINES = [
    FulfillmentLine(
        fulfillment_id="ful_x", order_line_id="A", product_id="p", name="A", quantity=2
    ),
    FulfillmentLine(
        fulfillment_id="ful_x", order_line_id="B", product_id="p", name="B", quantity=1
    ),
]


def parcels(
    *spec: tuple[ShipmentStatus, dict[str, int]],
) -> tuple[list[Shipment], list[ShipmentLine]]:
    shipments, lines = [], []
    for n, (status, content) in enumerate(spec):
        shipment = Shipment(id=f"shp_{n}", fulfillment_id="ful_x", order_id="ord_x", status=status)
        shipments.append(shipment)
        lines += [
            ShipmentLine(shipment_id=shipment.id, order_line_id=line, product_id="p", quantity=q)
            for line, q in content.items()
        ]
    return shipments, lines


@pytest.mark.parametrize(
    ("spec", "on_hold", "fulfilment", "order", "unassigned"),
    [
        # nothing packed yet
        ((), False, F.OPEN, None, {"A": 2, "B": 1}),
        # a parcel without a label: in progress, the order still queued
        (((S.PENDING, {"A": 2}),), False, F.IN_PROGRESS, None, {"A": 0, "B": 1}),
        # split shipments: one on its way
        (
            ((S.IN_TRANSIT, {"A": 2}), (S.PENDING, {"B": 1})),
            False,
            F.PARTIALLY_SHIPPED,
            OS.PARTIALLY_SHIPPED,
            {"A": 0, "B": 0},
        ),
        # one delivered, the other in transit: shipped, not delivered
        (
            ((S.DELIVERED, {"A": 2}), (S.IN_TRANSIT, {"B": 1})),
            False,
            F.SHIPPED,
            OS.SHIPPED,
            {"A": 0, "B": 0},
        ),
        # part of line A delivered only: not delivered
        (
            ((S.DELIVERED, {"A": 1, "B": 1}), (S.OUT_FOR_DELIVERY, {"A": 1})),
            False,
            F.SHIPPED,
            OS.SHIPPED,
            {"A": 0, "B": 0},
        ),
        # every line delivered, in two parcels
        (
            ((S.DELIVERED, {"A": 2}), (S.DELIVERED, {"B": 1})),
            False,
            F.DELIVERED,
            OS.DELIVERED,
            {"A": 0, "B": 0},
        ),
        # a hold keeps the fulfilment on hold; the order still follows its parcels
        (((S.IN_TRANSIT, {"A": 2}),), True, F.ON_HOLD, OS.PARTIALLY_SHIPPED, {"A": 0, "B": 1}),
        # a cancelled parcel frees its lines
        (((S.CANCELLED, {"A": 2, "B": 1}),), False, F.OPEN, None, {"A": 2, "B": 1}),
        # a parcel returned to sender frees its lines too
        (
            ((S.RETURN_TO_SENDER, {"A": 2}), (S.IN_TRANSIT, {"B": 1})),
            False,
            F.PARTIALLY_SHIPPED,
            OS.PARTIALLY_SHIPPED,
            {"A": 2, "B": 0},
        ),
    ],
)
def test_status_from_parcels(
    spec: tuple[tuple[ShipmentStatus, dict[str, int]], ...],
    on_hold: bool,
    fulfilment: FulfillmentStatus,
    order: OrderStatus | None,
    unassigned: dict[str, int],
) -> None:
    shipments, lines = parcels(*spec)
    progress = line_progress(LINES, shipments, lines)
    status = fulfillment_status(
        F.OPEN,
        on_hold=on_hold,
        has_shipments=any(s.status != S.CANCELLED for s in shipments),
        progress=progress,
    )
    assert status is fulfilment
    assert order_status(progress) is order
    assert {p.order_line_id: p.unassigned for p in progress} == unassigned


def test_a_cancelled_fulfilment_stays_cancelled() -> None:
    shipments, lines = parcels((S.DELIVERED, {"A": 2, "B": 1}))
    progress = line_progress(LINES, shipments, lines)
    assert (
        fulfillment_status(F.CANCELLED, on_hold=False, has_shipments=True, progress=progress)
        is F.CANCELLED
    )


@pytest.mark.parametrize(
    ("current", "to", "allowed"),
    [
        (S.PENDING, S.LABEL_PURCHASED, True),
        (S.IN_TRANSIT, S.DELIVERED, True),
        (S.OUT_FOR_DELIVERY, S.IN_TRANSIT, False),  # a late webhook
        (S.DELIVERED, S.IN_TRANSIT, False),
        (S.PENDING, S.CANCELLED, True),
        (S.LABEL_PURCHASED, S.CANCELLED, False),  # a label cannot be cancelled here
        (S.FAILURE, S.DELIVERED, True),
        (S.RETURN_TO_SENDER, S.DELIVERED, False),
    ],
)
def test_parcels_move_forward_only(
    current: ShipmentStatus, to: ShipmentStatus, allowed: bool
) -> None:
    assert shipment_can_move(current, to) is allowed


@pytest.mark.parametrize(
    "spec",
    [
        (),
        ((S.PENDING, {"A": 2}),),
        ((S.IN_TRANSIT, {"A": 2}), (S.PENDING, {"B": 1})),
        ((S.DELIVERED, {"A": 2}), (S.IN_TRANSIT, {"B": 1})),
        ((S.DELIVERED, {"A": 1, "B": 1}), (S.OUT_FOR_DELIVERY, {"A": 1})),
        ((S.DELIVERED, {"A": 2}), (S.DELIVERED, {"B": 1})),
        ((S.CANCELLED, {"A": 2, "B": 1}),),
        ((S.RETURN_TO_SENDER, {"A": 2}), (S.IN_TRANSIT, {"B": 1})),
        ((S.FAILURE, {"A": 2, "B": 1}),),
        ((S.RETURN_TO_SENDER, {"A": 2, "B": 1}),),
        ((S.LABEL_PURCHASED, {"A": 2}), (S.AVAILABLE_FOR_PICKUP, {"B": 1})),
    ],
)
def test_the_workflow_mirrors_the_database_rule(
    spec: tuple[tuple[ShipmentStatus, dict[str, int]], ...],
) -> None:
    """``FulfillmentWorkflow`` derives its status (query, search attribute) itself; it
    must say what ``services.fulfillment.status`` writes to the row."""
    shipments, lines = parcels(*spec)
    expected = fulfillment_status(
        F.OPEN,
        on_hold=False,
        has_shipments=any(s.status != S.CANCELLED for s in shipments),
        progress=line_progress(LINES, shipments, lines),
    )
    states = parcel_states(shipments, lines)
    quantities = [
        LineQuantity(order_line_id=ln.order_line_id, quantity=ln.quantity) for ln in LINES
    ]
    assert parcels_status(quantities, states) is expected
