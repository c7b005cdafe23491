"""``ShipmentWorkflow``'s activity messages and its ``status`` query's answer.

The workflow's name, id, input and signals are shared with ``FulfillmentWorkflow`` and
the webhook in ``workflows.types.fulfillment``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from integrations.shipping.provider import TrackerState
from models.fulfillment import ShipmentStatus

BOOK_LABEL_ACTIVITY = "shipping.book_label"
RECORD_UPDATE_ACTIVITY = "shipping.record_update"
# Since the "local-tracking-steps" patch: every update that waited, in one local step.
RECORD_UPDATES_ACTIVITY = "shipping.record_updates"
MARK_DELAYED_ACTIVITY = "shipping.mark_delayed"
REFUND_LABEL_ACTIVITY = "shipping.refund_label"


class ShipmentRef(BaseModel):
    shipment_id: str


class BookedLabel(BaseModel):
    """What booking a label left on the shipment (the same answer when repeated)."""

    shipment_id: str
    status: ShipmentStatus
    carrier: str | None
    tracking_code: str | None
    tracking_url: str | None


class RecordUpdateInput(BaseModel):
    shipment_id: str
    tracker: TrackerState


class RecordedUpdate(BaseModel):
    """The shipment after a carrier update: ``moved`` if its status went forward,
    ``new_events`` the tracking entries not seen before."""

    status: ShipmentStatus
    moved: bool
    new_events: int
    # The latest tracking entry's words, for the fulfilment and the staff.
    detail: str | None = None
    # The carrier's time of the parcel's latest tracking entry (of all recorded so far):
    # the stall clock runs from it. None from workers before it existed, or no entry.
    last_event_at: datetime | None = None


class RecordUpdatesInput(BaseModel):
    """Carrier updates of one parcel, in the order they came."""

    shipment_id: str
    trackers: list[TrackerState]


class RecordedUpdates(BaseModel):
    """One ``RecordedUpdate`` per update, in the same order."""

    updates: list[RecordedUpdate]


class MarkDelayedInput(BaseModel):
    shipment_id: str
    stall_hours: float
    # The carrier's latest tracking entry (or, before any, when the label was booked).
    quiet_since: datetime


class ShipmentView(BaseModel):
    """The ``status`` query's answer."""

    shipment_id: str
    order_id: str
    status: ShipmentStatus
    delayed: bool
    tracking_code: str | None
    tracking_url: str | None
    last_update_at: datetime | None
    # Why the parcel is stuck (a refused label), if it is.
    problem: str | None = None
    # The label was refused and the workflow waits for ``retry_label`` (staff fix the
    # address first): the one time a corrected address can be taken.
    awaiting_retry: bool = False
