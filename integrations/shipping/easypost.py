"""The EasyPost adapter: labels and trackers through the real ``easypost`` SDK.

With no ``EASYPOST_API_KEY`` it talks to our EasyPost sandbox (``/_sandbox/easypost/v2``)
with the same SDK, so the code path is the production one.

How each call stays safe to repeat:

- ``create_shipment`` charges nothing: a retry after a lost answer leaves an unbought
  shipment behind at EasyPost, which costs nothing (EasyPost has no idempotency key).
- ``buy_label`` reads the shipment first and answers its label if it has one; if a buy
  races another (EasyPost answers ``SHIPMENT.POSTAGE.EXISTS``), it reads again.
- ``refund_label`` reads first: no label, or a refund already asked for, is done; a
  label the carrier has scanned is ``LabelInUse``.

The SDK is synchronous (``requests``): every call runs in a thread, with the SDK's own
timeout (``EASYPOST_TIMEOUT_SECONDS``) bounding it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from easypost.easypost_client import EasyPostClient
from easypost.errors.api.api_error import ApiError
from easypost.errors.general.easypost_error import EasyPostError
from easypost.errors.general.signature_verification_error import SignatureVerificationError
from easypost.util import validate_webhook

from core.errors import WebhookSecretMissing
from core.money import exponent
from core.settings import Settings
from core.telemetry import Tracing
from integrations.sdk_tracing import trace_easypost
from integrations.shipping.provider import (
    CarrierStatus,
    Label,
    LabelInUse,
    ProviderShipment,
    ShipmentRequest,
    ShippingRejected,
    ShippingUnavailable,
    TrackerState,
    TrackerWebhook,
    TrackingDetail,
    WebhookSignatureInvalid,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
SIGNATURE_HEADER = "X-Hmac-Signature"
TRACKER_UPDATED = "tracker.updated"
POSTAGE_EXISTS = "SHIPMENT.POSTAGE.EXISTS"
# Statuses a retry may cure: auth (a key being rotated), timeouts, rate limits, 5xx.
_RETRYABLE = {401, 403, 408, 423, 429}
_REFUND_DONE = {"submitted", "refunded"}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of an SDK object (or a plain dict, as webhooks carry)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    getter = getattr(obj, "get", None)
    return getter(name, default) if callable(getter) else getattr(obj, name, default)


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _status(value: Any) -> CarrierStatus:
    try:
        return CarrierStatus(str(value))
    except ValueError:
        return CarrierStatus.UNKNOWN


def minor_units(amount: Any, currency: str) -> int:
    """EasyPost's rate (a decimal string, ``"7.58"``) in minor units."""
    try:
        value = Decimal(str(amount)) * (10 ** exponent(currency))
    except InvalidOperation as exc:
        raise ShippingRejected(
            f"EasyPost answered a rate that is not a number: {amount!r}"
        ) from exc
    return int(value.to_integral_value())


def location_text(location: Any) -> str | None:
    """A tracking location as ``"City, ST, ZIP, CC"`` (the parts EasyPost knows)."""
    parts = [_get(location, k) for k in ("city", "state", "zip", "country")]
    text = ", ".join(str(p) for p in parts if p)
    return text or None


def tracker_state(tracker: Any) -> TrackerState:
    details = [
        TrackingDetail(
            status=_status(_get(d, "status")),
            message=str(_get(d, "message") or ""),
            location=location_text(_get(d, "tracking_location")),
            occurred_at=_datetime(_get(d, "datetime")),
        )
        for d in _get(tracker, "tracking_details") or []
    ]
    details.sort(key=lambda d: d.occurred_at)
    return TrackerState(
        tracker_id=str(_get(tracker, "id")),
        tracking_code=str(_get(tracker, "tracking_code") or ""),
        status=_status(_get(tracker, "status")),
        shipment_id=_get(tracker, "shipment_id"),
        details=details,
        updated_at=_datetime(_get(tracker, "updated_at") or _get(tracker, "created_at")),
    )


def label_of(shipment: Any) -> Label | None:
    """The label a bought shipment carries, or None if it has none yet."""
    postage = _get(shipment, "postage_label")
    rate = _get(shipment, "selected_rate")
    if postage is None or rate is None:
        return None
    tracker = _get(shipment, "tracker")
    currency = str(_get(rate, "currency") or "USD").upper()
    return Label(
        provider_shipment_id=str(_get(shipment, "id")),
        tracker_id=_get(tracker, "id"),
        tracking_code=str(_get(shipment, "tracking_code") or _get(tracker, "tracking_code") or ""),
        tracking_url=_get(tracker, "public_url"),
        label_url=str(_get(postage, "label_url") or ""),
        carrier=str(_get(rate, "carrier") or ""),
        service=str(_get(rate, "service") or ""),
        rate_amount=minor_units(_get(rate, "rate"), currency),
        currency=currency,
    )


def _address(address: Any) -> dict[str, Any]:
    return {k: v for k, v in address.model_dump().items() if v is not None}


class EasyPostProvider:
    name = "easypost"

    def __init__(
        self,
        client: EasyPostClient,
        *,
        webhook_secret: str | None,
        tracing: Tracing | None = None,
    ) -> None:
        self._client = client
        self._webhook_secret = webhook_secret
        trace_easypost(client, tracing)  # with an exporter: a span per call

    @classmethod
    def from_settings(cls, settings: Settings, tracing: Tracing | None = None) -> EasyPostProvider:
        client = EasyPostClient(
            settings.resolved_easypost_api_key,
            api_base=settings.resolved_easypost_base_url,
            # requests takes a float although the SDK's annotation says int.
            timeout=settings.easypost_timeout_seconds,  # type: ignore[arg-type]
        )
        return cls(
            client, webhook_secret=settings.resolved_easypost_webhook_secret, tracing=tracing
        )

    # --- the ShippingProvider protocol ---------------------------------------------------

    async def create_shipment(self, request: ShipmentRequest) -> ProviderShipment:
        parcel = {"weight": request.parcel.weight_oz}
        for ours, theirs in (
            ("length_in", "length"),
            ("width_in", "width"),
            ("height_in", "height"),
        ):
            value = getattr(request.parcel, ours)
            if value is not None:
                parcel[theirs] = value
        params = {
            "to_address": _address(request.to_address),
            "from_address": _address(request.from_address),
            "parcel": parcel,
            "reference": request.reference,
            "is_return": request.is_return,
        }
        shipment = await self._call(lambda: self._client.shipment.create(**params))
        rates = list(_get(shipment, "rates") or [])
        if not rates:
            messages = "; ".join(str(_get(m, "message")) for m in _get(shipment, "messages") or [])
            raise ShippingRejected(f"EasyPost offers no rate for this parcel: {messages or '-'}")
        return ProviderShipment(
            provider_shipment_id=str(_get(shipment, "id")),
            rate_ids=[str(_get(r, "id")) for r in rates],
        )

    async def buy_label(self, provider_shipment_id: str) -> Label:
        shipment = await self._retrieve(provider_shipment_id)
        if _get(shipment, "refund_status") in _REFUND_DONE:
            # Its label was voided (a compensation ran): a new label needs a new shipment.
            raise ShippingRejected(f"the label of {provider_shipment_id} was voided")
        label = label_of(shipment)
        if label is not None:
            return label
        rates = list(_get(shipment, "rates") or [])
        if not rates:
            raise ShippingRejected(f"EasyPost shipment {provider_shipment_id} has no rate to buy")
        cheapest = min(
            rates,
            key=lambda r: minor_units(_get(r, "rate"), str(_get(r, "currency") or "USD").upper()),
        )
        try:
            bought = await self._call(
                lambda: self._client.shipment.buy(
                    provider_shipment_id, rate={"id": str(_get(cheapest, "id"))}
                ),
                expect=POSTAGE_EXISTS,
            )
        except _PostageExists:
            # Bought meanwhile (a retry whose first answer was lost): answer that label.
            bought = await self._retrieve(provider_shipment_id)
        label = label_of(bought)
        if label is None:
            raise ShippingUnavailable(f"EasyPost bought {provider_shipment_id} but shows no label")
        return label

    async def refund_label(self, provider_shipment_id: str) -> None:
        shipment = await self._retrieve(provider_shipment_id)
        if _get(shipment, "postage_label") is None:
            return  # nothing bought, nothing to void
        if _get(shipment, "refund_status") in _REFUND_DONE:
            return
        refunded = await self._call(lambda: self._client.shipment.refund(provider_shipment_id))
        if _get(refunded, "refund_status") == "rejected":
            raise LabelInUse(
                f"EasyPost refused to void the label of {provider_shipment_id} (already used)"
            )

    async def get_tracker(self, tracker_id: str) -> TrackerState:
        tracker = await self._call(lambda: self._client.tracker.retrieve(tracker_id))
        return tracker_state(tracker)

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> TrackerWebhook | None:
        signature = next(
            (v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None
        )
        if not self._webhook_secret:
            # The configuration's fault, not the request's: 503, so EasyPost sends it again.
            raise WebhookSecretMissing(
                "EASYPOST_WEBHOOK_SECRET is not set: EasyPost's webhooks cannot be verified"
            )
        if not signature:
            raise WebhookSignatureInvalid("the webhook carries no X-Hmac-Signature")
        try:
            event = validate_webhook(body, {SIGNATURE_HEADER: signature}, self._webhook_secret)
        except SignatureVerificationError as exc:
            raise WebhookSignatureInvalid(str(exc)) from exc
        except TypeError as exc:
            # A signature with non-ASCII characters, which the SDK's constant-time
            # comparison refuses to compare: forged all the same (not a 500).
            raise WebhookSignatureInvalid("the X-Hmac-Signature is not ASCII") from exc
        except ValueError as exc:  # signed, yet not JSON
            raise WebhookSignatureInvalid(f"the webhook's body is not JSON: {exc}") from exc
        if not isinstance(event, dict) or event.get("description") != TRACKER_UPDATED:
            return None
        result = event.get("result")
        if not isinstance(result, dict) or not event.get("id"):
            raise ShippingRejected("a tracker.updated webhook without its event id or tracker")
        try:
            tracker = tracker_state(result)
        except (TypeError, ValueError) as exc:
            raise ShippingRejected(f"a tracker.updated webhook of the wrong shape: {exc}") from exc
        return TrackerWebhook(event_id=str(event["id"]), tracker=tracker)

    # --- plumbing --------------------------------------------------------------------------

    async def _retrieve(self, provider_shipment_id: str) -> Any:
        return await self._call(lambda: self._client.shipment.retrieve(provider_shipment_id))

    async def _call(self, fn: Callable[[], T], expect: str | None = None) -> T:
        """Run one SDK call off the event loop; EasyPost's errors as ours. An error whose
        code is ``expect`` raises ``_PostageExists`` for the caller to handle."""
        try:
            return await asyncio.to_thread(fn)
        except ApiError as exc:
            status = int(exc.http_status or 0)
            code = str(exc.code or "")
            if expect is not None and code == expect:
                raise _PostageExists(code) from exc
            detail = f"EasyPost answered {status or 'nothing'}: {_message(exc)}"
            if status == 0 or status >= 500 or status in _RETRYABLE:
                raise ShippingUnavailable(detail) from exc
            raise ShippingRejected(detail) from exc
        except EasyPostError as exc:
            raise ShippingUnavailable(f"EasyPost failed: {exc}") from exc
        except OSError as exc:
            raise ShippingUnavailable(f"EasyPost is unreachable: {exc}") from exc


def _message(exc: ApiError) -> str:
    code = f"{exc.code} " if exc.code else ""
    errors = exc.errors or []
    fields = "; ".join(
        f"{e.get('field')}: {e.get('message')}" if isinstance(e, dict) else str(e) for e in errors
    )
    text = f"{code}{exc.message}"
    return f"{text} ({fields})" if fields else text


class _PostageExists(Exception):
    pass
