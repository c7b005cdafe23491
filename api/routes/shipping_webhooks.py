"""Carrier webhooks: EasyPost's ``tracker.updated``, verified and passed to the parcel's
``ShipmentWorkflow``."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from pydantic import Field

from api.deps import DbSession, State
from api.problems import TEMPORAL_UNAVAILABLE, problem_responses
from api.query_parameters import takes_any_query
from core.errors import WebhookSecretMissing
from integrations.shipping.provider import ShippingRejected, WebhookSignatureInvalid
from models.base import CamelModel
from services.fulfillment.tracking import shipment_of_tracker
from workflows.types.fulfillment import CarrierUpdate

log = logging.getLogger(__name__)
router = APIRouter(prefix="/shipping", tags=["shipping"])

NOT_A_TRACKER_UPDATE = "not_a_tracker_update"
UNKNOWN_TRACKER = "unknown_tracker"
NO_LONGER_TRACKED = "no_longer_tracked"


class CarrierWebhookReceipt(CamelModel):
    received: bool = True
    shipment_id: str | None = Field(
        default=None, description="The parcel the update was passed to", examples=["shp_01J…"]
    )
    ignored: str | None = Field(
        default=None,
        description=(
            "Why nothing was done: `not_a_tracker_update` (another event type), "
            "`unknown_tracker` (not one of our parcels), `no_longer_tracked` (the parcel's "
            "tracking has ended)"
        ),
        examples=[None],
    )


@router.post(
    "/webhooks/easypost",
    summary="EasyPost webhook receiver (tracker updates)",
    response_model=CarrierWebhookReceipt,
    responses=problem_responses(
        WebhookSignatureInvalid,
        (ShippingRejected, "shipping_rejected"),
        WebhookSecretMissing,
        *TEMPORAL_UNAVAILABLE,
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "example": {
                        "id": "evt_3c1b2a…",
                        "object": "Event",
                        "description": "tracker.updated",
                        "result": {
                            "id": "trk_0a1b2c…",
                            "object": "Tracker",
                            "tracking_code": "9400100000000000000000",
                            "status": "in_transit",
                            "shipment_id": "shp_9f8e7d…",
                            "tracking_details": [
                                {
                                    "status": "in_transit",
                                    "message": "Arrived at USPS facility",
                                    "datetime": "2026-12-03T09:00:00Z",
                                    "tracking_location": {"city": "Boston", "state": "MA"},
                                }
                            ],
                            "updated_at": "2026-12-03T09:00:00Z",
                        },
                    }
                }
            },
        }
    },
)
@takes_any_query  # called at the URL the operator gave the provider
async def easypost_webhook(
    request: Request, state: State, session: DbSession
) -> CarrierWebhookReceipt:
    """EasyPost calls this with its events, signed with the webhook secret
    (`X-Hmac-Signature`); the EasyPost sandbox does the same.

    A missing or wrong signature answers 400 `invalid_signature`. With no
    `EASYPOST_WEBHOOK_SECRET` to verify it with (a real `EASYPOST_API_KEY` set outside
    production; production does not start without it) the answer is 503
    `webhook_secret_missing`, so EasyPost delivers it again once it is set. A signed
    `tracker.updated` that is not a tracker answers 422 `shipping_rejected`. Other event
    types, and trackers that are not one of our parcels, answer 200 with `ignored`. A
    tracker update is passed to its parcel's workflow, which drops an event id it has seen
    (a redelivery) and records the rest: the tracking history never repeats an entry and
    the parcel's status only moves forward. If Temporal cannot be reached the answer is
    503, so EasyPost delivers it again.
    """
    webhook = state.shipping.verify_webhook(await request.body(), request.headers)
    if webhook is None:
        return CarrierWebhookReceipt(ignored=NOT_A_TRACKER_UPDATE)
    tracker = webhook.tracker
    shipment_id = await shipment_of_tracker(session, tracker.tracker_id)
    if shipment_id is None:
        log.info("tracker update for no parcel of ours", extra={"tracker_id": tracker.tracker_id})
        return CarrierWebhookReceipt(ignored=UNKNOWN_TRACKER)
    update = CarrierUpdate(event_id=webhook.event_id, tracker=tracker)
    if not await state.workflows.shipments.notify_carrier(shipment_id, update):
        log.info("tracker update for a parcel no longer tracked", extra={"shipment": shipment_id})
        return CarrierWebhookReceipt(shipment_id=shipment_id, ignored=NO_LONGER_TRACKED)
    return CarrierWebhookReceipt(shipment_id=shipment_id)
