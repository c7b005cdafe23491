"""Names, ids and messages of the after-sale workflows: ``FulfillmentWorkflow`` (one per
order), ``ShipmentWorkflow`` (one per parcel, a child of its fulfilment) and
``ReturnWorkflow`` (one per return). Names are recorded in every history: never renamed.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from integrations.shipping.provider import TrackerState
from models.fulfillment import ShipmentStatus

FULFILLMENT_WORKFLOW = "FulfillmentWorkflow"
SHIPMENT_WORKFLOW = "ShipmentWorkflow"
RETURN_WORKFLOW = "ReturnWorkflow"

STATUS_QUERY = "status"
# ShipmentWorkflow: a verified carrier update (from POST /api/shipping/webhooks/easypost).
CARRIER_UPDATE_SIGNAL = "carrier_update"
# FulfillmentWorkflow: a child parcel's status changed.
SHIPMENT_PROGRESS_SIGNAL = "shipment_progress"
# ShipmentWorkflow: try the label again after the carrier refused it (address fixed).
RETRY_LABEL_SIGNAL = "retry_label"


def fulfillment_workflow_id(order_id: str) -> str:
    return f"fulfillment-{order_id}"


def shipment_workflow_id(shipment_id: str) -> str:
    return f"shipment-{shipment_id}"


def return_workflow_id(return_id: str) -> str:
    return f"return-{return_id}"


class ShipmentInput(BaseModel):
    """``ShipmentWorkflow``'s input (started by its ``FulfillmentWorkflow`` as a child)."""

    shipment_id: str
    order_id: str
    fulfillment_id: str
    # A parcel without a carrier update for this long is flagged delayed.
    stall_hours: float = 72.0
    # Carrier updates one run handles before it continues as new.
    max_updates_per_run: int = 500
    # Carried over by continue-as-new (a fresh start leaves them at their defaults).
    status: ShipmentStatus = ShipmentStatus.PENDING
    delayed: bool = False
    tracking_code: str | None = None
    tracking_url: str | None = None
    last_update_at: datetime | None = None
    seen_event_ids: list[str] = Field(default_factory=list)
    # A cancel the carrier refused (it had scanned the label): a later run answers a
    # cancel the same way, without asking the carrier again.
    cancel_refused: bool = False


class ShipmentProgress(BaseModel):
    """A parcel's news for its fulfilment (``SHIPMENT_PROGRESS_SIGNAL``). ``exception``
    is set for ``failure``/``return_to_sender``: the fulfilment goes on hold.
    ``cancel_refused``: the parcel's workflow was cancelled after the carrier scanned
    its label (the void refused): it stays labelled and tracked, an exception too."""

    shipment_id: str
    status: ShipmentStatus
    delayed: bool = False
    exception: bool = False
    detail: str | None = None
    cancel_refused: bool = False


class RetryLabel(BaseModel):
    """``RETRY_LABEL_SIGNAL``'s argument: the staff correction that asks for the label
    again. The signal is owed by the correction's transaction and may be sent twice (the
    relay after an answer that was lost); the workflow acts once per ``correction_id``.
    Sent with no argument (a correction recorded before it), every signal is acted on."""

    correction_id: str


class CarrierUpdate(BaseModel):
    """A verified carrier webhook for one parcel (``CARRIER_UPDATE_SIGNAL``). ``event_id``
    is the provider's event id: a redelivered webhook repeats it and is dropped."""

    event_id: str
    tracker: TrackerState
