"""Names, ids and messages of the after-sale workflows: ``FulfillmentWorkflow`` (one per
order), ``ShipmentWorkflow`` (one per parcel, a child of its fulfilment) and
``ReturnWorkflow`` (one per return). Names are recorded in every history: never renamed.
"""

from __future__ import annotations

FULFILLMENT_WORKFLOW = "FulfillmentWorkflow"
SHIPMENT_WORKFLOW = "ShipmentWorkflow"
RETURN_WORKFLOW = "ReturnWorkflow"

STATUS_QUERY = "status"
# ShipmentWorkflow: a verified carrier update (from POST /api/shipping/webhooks/easypost).
CARRIER_UPDATE_SIGNAL = "carrier_update"
# FulfillmentWorkflow: a child parcel's status changed.
SHIPMENT_PROGRESS_SIGNAL = "shipment_progress"


def fulfillment_workflow_id(order_id: str) -> str:
    return f"fulfillment-{order_id}"


def shipment_workflow_id(shipment_id: str) -> str:
    return f"shipment-{shipment_id}"


def return_workflow_id(return_id: str) -> str:
    return f"return-{return_id}"
