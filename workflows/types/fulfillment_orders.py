"""``FulfillmentWorkflow``'s input, messages and the results of its activities.

Light (pydantic and model enums only): the API, the typed client, the service and the
workflow all use them. Names of the workflow, its id scheme and the child's messages are
in ``workflows.types.fulfillment``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.fulfillment import FulfillmentStatus, ShipmentStatus

# Update names (recorded in histories: never renamed).
CREATE_SHIPMENT_UPDATE = "create_shipment"
HOLD_UPDATE = "hold"
RELEASE_UPDATE = "release"
CANCEL_FULFILLMENT_UPDATE = "cancel"

# Parcels whose lines are free to go out again (as ``services.fulfillment.status``).
GIVEN_UP = frozenset({ShipmentStatus.CANCELLED, ShipmentStatus.RETURN_TO_SENDER})


class FulfillmentInput(BaseModel):
    """Started by the ``fulfillment.order_ready`` subscriber, with the event's priority."""

    order_id: str
    priority: int = 0
    priority_level: str = "normal"
    # Passed to each parcel's ShipmentWorkflow (SHIPMENT_STALL_HOURS).
    stall_hours: float = 72.0


class LineQuantity(BaseModel):
    order_line_id: str
    quantity: int = Field(gt=0)


class FulfillmentOpened(BaseModel):
    """What the workflow keeps of its fulfilment order, and whose it is (the account, by id).
    Opened before (a repeat: a reset run opens it again), also what the database holds
    of it since: its hold and its parcels, which the run takes as they are stored."""

    fulfillment_id: str
    order_id: str
    status: FulfillmentStatus
    lines: list[LineQuantity]
    user_id: str
    # Empty: the history keeps no person (runs opened before carry them, unused: the
    # cancellation email reads the order's address and the account's name when sent).
    email: str
    name: str
    total: int
    currency: str
    hold_reason: str | None = None
    shipments: list[ShipmentState] = []


class ShipmentRequest(BaseModel):
    """Staff's parcel (the ``create_shipment`` Update)."""

    lines: list[LineQuantity] = Field(min_length=1)
    weight_oz: float | None = None


class NewShipment(BaseModel):
    """The activity's input: the workflow names the shipment, so a retried activity
    finds the one it inserted."""

    fulfillment_id: str
    shipment_id: str
    lines: list[LineQuantity]
    weight_oz: float | None = None


class ShipmentCreated(BaseModel):
    shipment_id: str
    status: ShipmentStatus
    lines: list[LineQuantity]
    fulfillment_status: FulfillmentStatus


class HoldRequest(BaseModel):
    reason: str


class FulfillmentHoldInput(BaseModel):
    fulfillment_id: str
    reason: str
    # A parcel's exception (``hold:{shipment id}:{n}``, the parcel's n-th): held once.
    key: str | None = None


class FulfillmentRef(BaseModel):
    fulfillment_id: str


class CancelFulfillmentRequest(BaseModel):
    reason: str | None = None


class FulfillmentCancelInput(BaseModel):
    fulfillment_id: str
    reason: str | None = None


class FulfillmentCancelled(BaseModel):
    """The cancel activity's answer: which pending parcels it cancelled."""

    cancelled_shipments: list[str]
    status: FulfillmentStatus


class FulfillmentChange(BaseModel):
    """The fulfilment's status after a hold or a release. ``changed``: a release lifted
    a hold; a hold is the one in place (made by this call, or by the attempt a retry
    repeats)."""

    status: FulfillmentStatus
    changed: bool


class ShipmentState(BaseModel):
    shipment_id: str
    status: ShipmentStatus
    delayed: bool = False
    lines: list[LineQuantity]


class FulfillmentView(BaseModel):
    """The ``status`` query's answer."""

    order_id: str
    fulfillment_id: str | None
    status: FulfillmentStatus | None
    hold_reason: str | None = None
    shipments: list[ShipmentState] = []


# ``ShipmentState`` is defined after the answer that carries it.
FulfillmentOpened.model_rebuild()
