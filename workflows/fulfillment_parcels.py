"""``FulfillmentWorkflow``'s own reading of its parcels: what is assigned, what its
status is, and what staff may not do now. Pure (no I/O, no clock): the validators and
the run share it, and it is tested against the database's rule
(``services.fulfillment.status``) it mirrors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from temporalio.exceptions import ActivityError, ApplicationError

from models.fulfillment import FulfillmentStatus, ShipmentStatus
from workflows.types.fulfillment_orders import GIVEN_UP, LineQuantity, ShipmentState

NOT_SHIPPED = frozenset({ShipmentStatus.PENDING}) | GIVEN_UP
CLOSED = frozenset({FulfillmentStatus.CANCELLED, FulfillmentStatus.DELIVERED})


def refused(code: str, message: str) -> ApplicationError:
    """An Update's refusal: its ``type`` is our stable code (the client maps it)."""
    return ApplicationError(message, type=code, non_retryable=True)


def as_refusal(err: ActivityError) -> ApplicationError:
    """The activity's business error, as the Update's answer (its code kept)."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type and cause.non_retryable:
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return refused("fulfillment_unavailable", "the fulfilment step could not complete; try again")


def refuse_closed_or_held(status: FulfillmentStatus | None, hold_reason: str | None) -> None:
    if status in CLOSED:
        raise refused("fulfillment_closed", f"the fulfilment order is {status}")
    if hold_reason is not None:
        raise refused("fulfillment_on_hold", f"the fulfilment order is on hold: {hold_reason}")


def refuse_labelled(shipments: Iterable[ShipmentState]) -> None:
    labelled = [
        s.shipment_id
        for s in shipments
        if s.status not in (ShipmentStatus.PENDING, ShipmentStatus.CANCELLED)
    ]
    if labelled:
        raise refused(
            "fulfillment_has_labels",
            f"shipment {labelled[0]} has a label: the order can no longer be cancelled",
        )


def _units(
    shipments: Iterable[ShipmentState], counts: Callable[[ShipmentStatus], bool]
) -> dict[str, int]:
    units: dict[str, int] = {}
    for shipment in shipments:
        if counts(shipment.status):
            for line in shipment.lines:
                units[line.order_line_id] = units.get(line.order_line_id, 0) + line.quantity
    return units


def refuse_parcel(
    lines: Sequence[LineQuantity],
    shipments: Iterable[ShipmentState],
    wanted_lines: Sequence[LineQuantity],
) -> None:
    """A new parcel takes only this fulfilment's lines, and no more than is left of each
    (units in live parcels, pending or shipped, not given up, are taken)."""
    quantities = {ln.order_line_id: ln.quantity for ln in lines}
    wanted: dict[str, int] = {}
    for line in wanted_lines:
        if line.order_line_id not in quantities:
            raise refused(
                "unknown_order_line",
                f"order line {line.order_line_id} is not in this fulfilment order",
            )
        wanted[line.order_line_id] = wanted.get(line.order_line_id, 0) + line.quantity
    taken = _units(shipments, lambda s: s not in GIVEN_UP)
    for order_line_id, quantity in wanted.items():
        left = quantities[order_line_id] - taken.get(order_line_id, 0)
        if quantity > left:
            raise refused(
                "quantity_exceeds_unassigned",
                f"{quantity} of order line {order_line_id} asked, {left} left to ship",
            )


def parcels_status(
    lines: Sequence[LineQuantity], shipments: Sequence[ShipmentState]
) -> FulfillmentStatus:
    """The status the parcels give (holds and cancels aside)."""
    delivered = _units(shipments, lambda s: s is ShipmentStatus.DELIVERED)
    shipped = _units(shipments, lambda s: s not in NOT_SHIPPED)
    if lines and all(delivered.get(ln.order_line_id, 0) >= ln.quantity for ln in lines):
        return FulfillmentStatus.DELIVERED
    if lines and all(shipped.get(ln.order_line_id, 0) >= ln.quantity for ln in lines):
        return FulfillmentStatus.SHIPPED
    if any(shipped.values()):
        return FulfillmentStatus.PARTIALLY_SHIPPED
    # As ``FulfillmentProgress.refresh`` counts them: any parcel not cancelled.
    if any(s.status is not ShipmentStatus.CANCELLED for s in shipments):
        return FulfillmentStatus.IN_PROGRESS
    return FulfillmentStatus.OPEN
