"""EasyPost v2's wire format, as the sandbox answers it: objects, errors, rates, tracking
details, ``tracker.updated`` events and their ``X-Hmac-Signature``.

Magic destinations (``to_address.zip``): ``00000`` cannot be verified (422
``ADDRESS.VERIFY.FAILURE``); ``99999`` gets no rate (the shipment answers ``rates: []``
and a ``rate_error`` message, as EasyPost does when no carrier serves a parcel).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

UNVERIFIABLE_ZIP = "00000"
NO_RATES_ZIP = "99999"
REQUIRED_ADDRESS = ("street1", "city", "zip", "country")
ADDRESS_FIELDS = (
    "name",
    "company",
    "street1",
    "street2",
    "city",
    "state",
    "zip",
    "country",
    "phone",
    "email",
)

# The normal path of a parcel; anything not here stops auto-advance.
NEXT_STATUS = {
    "pre_transit": "in_transit",
    "in_transit": "out_for_delivery",
    "out_for_delivery": "delivered",
}
STATUSES = (
    "unknown",
    "pre_transit",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "available_for_pickup",
    "return_to_sender",
    "failure",
    "cancelled",
    "error",
)
# A tracker in these statuses never moves again (a refunded label's is cancelled).
FINAL_STATUSES = frozenset({"delivered", "return_to_sender", "cancelled"})
MESSAGES = {
    "pre_transit": "Shipping Label Created, Carrier Awaiting Item",
    "in_transit": "Arrived at Regional Facility",
    "out_for_delivery": "Out for Delivery",
    "delivered": "Delivered, In/At Mailbox",
    "available_for_pickup": "Available for Pickup",
    "return_to_sender": "Return to Sender Processed",
    "failure": "Delivery Attempted - No Access to Delivery Location",
    "cancelled": "Label Voided",
    "unknown": "Status Not Available",
    "error": "Tracking Error",
}


@dataclass(frozen=True)
class Carrier:
    carrier: str
    service: str
    base: Decimal
    per_oz: Decimal
    days: int


CARRIERS = (
    Carrier("USPS", "GroundAdvantage", Decimal("4.75"), Decimal("0.12"), 5),
    Carrier("UPS", "Ground", Decimal("8.95"), Decimal("0.10"), 3),
    Carrier("FedEx", "FEDEX_2_DAY", Decimal("14.50"), Decimal("0.20"), 2),
)


class EasyPostError(Exception):
    """An error EasyPost would answer: status, code, message and field errors."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "errors": self.errors}}


def not_found() -> EasyPostError:
    return EasyPostError(404, "NOT_FOUND", "The requested resource could not be found.")


def invalid(field: str, message: str) -> EasyPostError:
    return EasyPostError(
        422,
        "PARAMETER.INVALID",
        "Unable to create shipment, one or more parameters were invalid.",
        [{"field": field, "message": message}],
    )


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def address(params: Any, field: str, now: datetime) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise invalid(field, "must be an address object")
    for name in REQUIRED_ADDRESS:
        if not str(params.get(name) or "").strip():
            raise invalid(f"{field}.{name}", "cannot be blank")
    country = str(params["country"]).strip().upper()
    if len(country) != 2:
        raise invalid(f"{field}.country", "must be an ISO 3166 two-letter code")
    shown = {name: params.get(name) for name in ADDRESS_FIELDS}
    return shown | {
        "id": new_id("adr"),
        "object": "Address",
        "mode": "test",
        "country": country,
        "residential": None,
        "verifications": {},
        "created_at": iso(now),
        "updated_at": iso(now),
    }


def parcel(params: Any, now: datetime) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise invalid("parcel", "must be a parcel object")
    try:
        weight = float(params.get("weight") or 0)
        sizes = {k: params.get(k) for k in ("length", "width", "height")}
        for key, value in sizes.items():
            if value is not None and float(value) <= 0:
                raise invalid(f"parcel.{key}", "must be greater than 0")
    except (TypeError, ValueError):
        raise invalid("parcel", "weight and dimensions must be numbers") from None
    if weight <= 0:
        raise invalid("parcel.weight", "must be greater than 0")
    return sizes | {
        "id": new_id("prcl"),
        "object": "Parcel",
        "mode": "test",
        "weight": weight,
        "predefined_package": None,
        "created_at": iso(now),
        "updated_at": iso(now),
    }


def rates(shipment_id: str, weight_oz: float, now: datetime) -> list[dict[str, Any]]:
    found = []
    for c in CARRIERS:
        amount = (c.base + c.per_oz * Decimal(str(weight_oz))).quantize(Decimal("0.01"))
        found.append(
            {
                "id": new_id("rate"),
                "object": "Rate",
                "mode": "test",
                "carrier": c.carrier,
                "service": c.service,
                "rate": str(amount),
                "currency": "USD",
                "retail_rate": str((amount * Decimal("1.15")).quantize(Decimal("0.01"))),
                "retail_currency": "USD",
                "list_rate": str(amount),
                "list_currency": "USD",
                "delivery_days": c.days,
                "est_delivery_days": c.days,
                "delivery_date": None,
                "delivery_date_guaranteed": False,
                "shipment_id": shipment_id,
                "carrier_account_id": f"ca_sandbox{c.carrier.lower()}",
                "created_at": iso(now),
                "updated_at": iso(now),
            }
        )
    return found


def tracking_code(carrier: str) -> str:
    digits = "".join(str(secrets.randbelow(10)) for _ in range(20))
    if carrier == "UPS":
        return "1Z" + secrets.token_hex(8).upper()
    if carrier == "FedEx":
        return digits[:12]
    return "9400" + digits[:18]


def location(text: str | None) -> dict[str, Any]:
    """``"City, ST, ZIP, CC"`` (any leading part of it) as a TrackingLocation."""
    parts = [p.strip() or None for p in (text or "").split(",")] if text else []
    parts += [None] * (4 - len(parts))
    city, state, zip_code, country = parts[:4]
    return {
        "object": "TrackingLocation",
        "city": city,
        "state": state,
        "zip": zip_code,
        "country": country,
    }


def address_location(addr: dict[str, Any]) -> str:
    parts = [addr.get(k) for k in ("city", "state", "zip", "country")]
    return ", ".join(str(p) if p else "" for p in parts)


def tracking_detail(
    status: str, message: str | None, where: str | None, carrier: str, at: datetime
) -> dict[str, Any]:
    return {
        "object": "TrackingDetail",
        "message": message or MESSAGES.get(status, status),
        "description": None,
        "status": status,
        "status_detail": "status_update",
        "datetime": iso(at),
        "source": carrier,
        "carrier_code": None,
        "tracking_location": location(where),
    }


def event(tracker: dict[str, Any], previous_status: str, url: str, at: datetime) -> dict[str, Any]:
    """A ``tracker.updated`` Event carrying the whole tracker."""
    return {
        "object": "Event",
        "id": new_id("evt"),
        "mode": "test",
        "description": "tracker.updated",
        "previous_attributes": {"status": previous_status},
        "result": tracker,
        "status": "pending",
        "pending_urls": [url],
        "completed_urls": [],
        "user_id": "user_sandbox",
        "created_at": iso(at),
        "updated_at": iso(at),
    }


def sign(payload: bytes, secret: str) -> str:
    """The ``X-Hmac-Signature`` EasyPost sends (what ``easypost.util.validate_webhook``
    recomputes): HMAC-SHA256 of the body under the NFKD-normalised secret."""
    key = unicodedata.normalize("NFKD", secret).encode()
    return "hmac-sha256-hex=" + hmac.new(key, payload, hashlib.sha256).hexdigest()
