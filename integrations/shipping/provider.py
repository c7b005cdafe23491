"""The ``ShippingProvider`` protocol: labels and tracking from a carrier aggregator.

Booking is two calls, so that a retried booking never buys twice: ``create_shipment``
(nothing is charged; the caller saves the provider's id at once), then ``buy_label`` on
that id, which answers the label already bought if it was. ``refund_label`` voids an
unused label (the compensation of a booking). Tracking updates arrive as webhooks,
checked by ``verify_webhook``; ``get_tracker`` asks where a parcel stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Protocol

from pydantic import BaseModel

from core.errors import DependencyUnavailable, ShopError


class CarrierStatus(StrEnum):
    """A tracker's status, in EasyPost's words."""

    UNKNOWN = "unknown"
    PRE_TRANSIT = "pre_transit"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    RETURN_TO_SENDER = "return_to_sender"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    ERROR = "error"


class PostalAddress(BaseModel):
    name: str | None = None
    street1: str
    street2: str | None = None
    city: str
    state: str | None = None
    zip: str
    country: str
    phone: str | None = None
    email: str | None = None


class ParcelSpec(BaseModel):
    weight_oz: float
    length_in: float | None = None
    width_in: float | None = None
    height_in: float | None = None


class ShipmentRequest(BaseModel):
    """A parcel to book. ``reference`` is our shipment (or return) id."""

    reference: str
    to_address: PostalAddress
    from_address: PostalAddress
    parcel: ParcelSpec
    is_return: bool = False


class ProviderShipment(BaseModel):
    """A shipment created at the provider, with the rates on offer (not yet bought)."""

    provider_shipment_id: str
    rate_ids: list[str]


class Label(BaseModel):
    provider_shipment_id: str
    tracker_id: str | None
    tracking_code: str
    tracking_url: str | None
    label_url: str
    carrier: str
    service: str
    rate_amount: int  # minor units
    currency: str


class TrackingDetail(BaseModel):
    """One entry of a tracker's history."""

    status: CarrierStatus
    message: str
    location: str | None
    occurred_at: datetime


class TrackerState(BaseModel):
    """A tracker as the provider sees it: its status and full history (oldest first)."""

    tracker_id: str
    tracking_code: str
    status: CarrierStatus
    shipment_id: str | None  # the provider's shipment id
    details: list[TrackingDetail]
    updated_at: datetime


class TrackerWebhook(BaseModel):
    """A verified ``tracker.updated`` webhook. ``event_id`` is the provider's event id
    (a redelivery repeats it)."""

    event_id: str
    tracker: TrackerState


class ShippingRejected(ShopError):
    """The provider refused the request (bad address, no rate): retrying will not help."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "shipping_rejected"
    title = "The carrier refused the shipment"
    retryable = False


class LabelInUse(ShippingRejected):
    """A void refused: the carrier has scanned the label (the parcel is on its way)."""

    code = "label_in_use"
    title = "The carrier has scanned the label; it cannot be voided"


class ShippingUnavailable(DependencyUnavailable):
    code = "shipping_unavailable"
    title = "The carrier cannot be reached; try again"


class WebhookSignatureInvalid(ShopError):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_signature"
    title = "The webhook's signature does not verify"
    retryable = False


class ShippingProvider(Protocol):
    name: str

    async def create_shipment(self, request: ShipmentRequest) -> ProviderShipment: ...

    async def buy_label(self, provider_shipment_id: str) -> Label:
        """Buy the cheapest rate's label, or answer the label already bought."""
        ...

    async def refund_label(self, provider_shipment_id: str) -> None:
        """Void an unused label (idempotent). ``LabelInUse`` once the carrier scanned it."""
        ...

    async def get_tracker(self, tracker_id: str) -> TrackerState: ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> TrackerWebhook | None:
        """The webhook if its signature verifies and it is a ``tracker.updated``; None for
        other event types. Raises ``WebhookSignatureInvalid``."""
        ...
