"""The Stripe adapter: PaymentIntents with ``capture_method=manual``.

With no ``STRIPE_SECRET_KEY`` it talks to our Stripe sandbox (``/_sandbox/stripe``) with
the same SDK, so the code path is the production one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import stripe

from core.errors import WebhookSecretMissing
from core.instrumentation import trace_stripe_http
from core.settings import Settings
from core.telemetry import Tracing
from integrations.payments.gateway import (
    IntentState,
    IntentStatus,
    InvalidPaymentMethod,
    InvalidSignature,
    PaymentDeclined,
    PaymentRejected,
    PaymentUnavailable,
    RefundResult,
    WebhookEvent,
)
from integrations.payments.stripe_units import from_stripe, to_stripe

SANDBOX_KEY = "sk_test_shopweave_sandbox"
_STATUSES = {
    "requires_payment_method": IntentStatus.REQUIRES_PAYMENT_METHOD,
    "requires_confirmation": IntentStatus.REQUIRES_CONFIRMATION,
    "requires_action": IntentStatus.REQUIRES_ACTION,
    "requires_capture": IntentStatus.AUTHORIZED,
    "succeeded": IntentStatus.CAPTURED,
    "canceled": IntentStatus.CANCELED,
    "processing": IntentStatus.PROCESSING,
}


def _state(obj: Any, refunded: int = 0) -> IntentState:
    """The PaymentIntent in our words, its amounts in our minor units (``refunded`` is
    ours already: the sum of ``_refund``s)."""
    intent: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    next_action = intent.get("next_action") or {}
    redirect = next_action.get("redirect_to_url") or {}
    error = intent.get("last_payment_error") or {}
    metadata = intent.get("metadata") or {}
    currency = str(intent["currency"]).upper()
    return IntentState(
        intent_id=intent["id"],
        status=_STATUSES[intent["status"]],
        amount=from_stripe(int(intent["amount"]), currency),
        currency=currency,
        amount_captured=from_stripe(int(intent.get("amount_received") or 0), currency),
        amount_refunded=refunded,
        next_action_url=redirect.get("url"),
        failure_code=error.get("decline_code") or error.get("code"),
        order_id=metadata.get("order_id"),
    )


def _translate(exc: stripe.StripeError) -> Exception:
    if isinstance(exc, stripe.CardError) and exc.code == "processing_error":
        # Stripe: "An error occurred while processing the card. Try again."
        return PaymentUnavailable(f"stripe: {exc.user_message or exc}")
    if isinstance(exc, stripe.CardError):
        reason = (exc.error.decline_code if exc.error else None) or exc.code or "card_declined"
        intent = getattr(exc.error, "payment_intent", None) if exc.error else None
        return PaymentDeclined(
            exc.user_message or "the card was declined",
            reason=reason,
            intentId=intent["id"] if intent else None,
        )
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return PaymentUnavailable(f"stripe: {exc.user_message or exc}")
    if isinstance(exc, stripe.APIError) or (exc.http_status or 0) >= 500:
        return PaymentUnavailable(f"stripe: {exc.user_message or exc}")
    if exc.http_status == 409:
        # The same idempotency key still in flight (an earlier attempt): try again.
        return PaymentUnavailable(f"stripe: {exc.user_message or exc}")
    if isinstance(exc, stripe.InvalidRequestError) and exc.param == "payment_method":
        return InvalidPaymentMethod(str(exc.user_message or exc))
    return PaymentRejected(f"stripe: {exc.user_message or exc}", reason=exc.code)


class UnexpectedState(PaymentRejected):
    """The PaymentIntent is not in a state that allows the call (often: an earlier
    attempt already did it and its answer was lost)."""


@contextmanager
def translated() -> Iterator[None]:
    """Stripe's errors as ours (``_translate``), with ``UnexpectedState`` set apart."""
    try:
        yield
    except stripe.InvalidRequestError as exc:
        if exc.code == "payment_intent_unexpected_state":
            raise UnexpectedState(f"stripe: {exc.user_message or exc}") from exc
        raise _translate(exc) from exc
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


class StripeGateway:
    name = "stripe"

    def __init__(self, client: stripe.StripeClient, webhook_secret: str | None = None) -> None:
        self._client = client
        self._webhook_secret = webhook_secret

    @classmethod
    def from_settings(cls, settings: Settings, tracing: Tracing | None = None) -> StripeGateway:
        secret = settings.stripe_secret_key
        addresses: dict[str, str] = {}
        key = SANDBOX_KEY
        if secret is not None:
            key = secret.get_secret_value()
        else:
            addresses["api"] = f"{settings.api_base_url}/_sandbox/stripe"
        http_client = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        trace_stripe_http(http_client, tracing)  # with an exporter: a span per call
        client = stripe.StripeClient(
            key,
            base_addresses=addresses,  # type: ignore[arg-type]
            # The SDK retries 409/429/5xx and lost connections with the same key.
            max_network_retries=settings.stripe_max_network_retries,
            http_client=http_client,
        )
        return cls(client, settings.resolved_stripe_webhook_secret)

    def verify_webhook(self, payload: bytes, signature: str) -> WebhookEvent:
        if self._webhook_secret is None:
            raise WebhookSecretMissing(
                "STRIPE_WEBHOOK_SECRET is not set: Stripe's webhooks cannot be verified"
            )
        if not signature.strip():
            raise InvalidSignature(
                "the request has no Stripe-Signature header", code="missing_signature"
            )
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret)
        except (stripe.SignatureVerificationError, TypeError):
            # TypeError: a signature with non-ASCII characters, which the SDK's
            # constant-time comparison refuses to compare. Forged all the same.
            raise InvalidSignature(
                "the Stripe-Signature header does not match the payload and the endpoint's "
                "secret (or its timestamp is too old)"
            ) from None
        except (ValueError, AttributeError):
            # AttributeError: signed JSON that is not an object (the SDK reads it as one).
            raise InvalidSignature(
                "the payload is not a Stripe event", code="invalid_payload"
            ) from None
        try:
            return _webhook_event(event["id"], event["type"], event["data"]["object"].to_dict())
        except (KeyError, AttributeError, TypeError):
            # Signed, yet JSON of another shape (no id, type or data.object): 400 as the
            # docstring of the endpoint says, not a 500 that Stripe retries for days.
            raise InvalidSignature(
                "the payload is not a Stripe event", code="invalid_payload"
            ) from None

    async def create(
        self,
        *,
        order_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
    ) -> IntentState:
        params: dict[str, Any] = {
            # Refused here (``AmountNotRepresentable``) if Stripe cannot take it exactly.
            "amount": to_stripe(amount, currency),
            "currency": currency.lower(),
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "capture_method": "manual",
            "metadata": {"order_id": order_id},
            "description": f"Shopweave order {order_id}",
        }
        with translated():
            intent = await self._client.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return _state(intent)

    async def confirm(
        self, intent_id: str, *, idempotency_key: str, return_url: str | None = None
    ) -> IntentState:
        params: dict[str, Any] = {"return_url": return_url} if return_url else {}
        try:
            with translated():
                intent = await self._client.v1.payment_intents.confirm_async(
                    intent_id,
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": idempotency_key},
                )
        except UnexpectedState:
            # Confirmed by an earlier attempt whose answer was lost: say where it stands.
            return await self.retrieve(intent_id)
        return _state(intent)

    async def _refunded(self, intent_id: str) -> int:
        """Stripe keeps refunds on the charge: add up the PaymentIntent's refunds."""
        return sum(r.amount for r in await self.refunds(intent_id))

    async def refunds(self, intent_id: str) -> list[RefundResult]:
        with translated():
            listed = await self._client.v1.refunds.list_async(
                {"payment_intent": intent_id, "limit": 100}
            )
        return [_refund(r) for r in reversed(listed.data) if r.status in ("succeeded", "pending")]

    async def retrieve_refund(self, refund_id: str) -> RefundResult:
        with translated():
            return _refund(await self._client.v1.refunds.retrieve_async(refund_id))

    async def _with_refunds(self, intent: Any) -> IntentState:
        state = _state(intent)
        if state.status is IntentStatus.CAPTURED:
            return _state(intent, await self._refunded(state.intent_id))
        return state

    async def retrieve(self, intent_id: str) -> IntentState:
        with translated():
            intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
        return await self._with_refunds(intent)

    async def capture(self, intent_id: str, *, idempotency_key: str) -> IntentState:
        try:
            with translated():
                intent = await self._client.v1.payment_intents.capture_async(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
        except UnexpectedState as exc:
            # Captured by an earlier attempt whose answer was lost, or no longer capturable.
            current = await self.retrieve(intent_id)
            if current.status is IntentStatus.CAPTURED:
                return current
            raise PaymentRejected(
                f"cannot capture a payment that is {current.status}", reason="not_capturable"
            ) from exc
        return _state(intent)  # just captured: nothing refunded yet

    async def void(self, intent_id: str, *, idempotency_key: str) -> IntentState:
        """Cancel the PaymentIntent (releasing any hold). Returns it canceled, or captured
        (for the caller to refund); anything else is retried."""
        current = await self.retrieve(intent_id)
        if current.status not in (IntentStatus.CANCELED, IntentStatus.CAPTURED):
            with contextlib.suppress(UnexpectedState), translated():
                await self._client.v1.payment_intents.cancel_async(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
            current = await self.retrieve(intent_id)  # where it stands now, not a replay
        if current.status not in (IntentStatus.CANCELED, IntentStatus.CAPTURED):
            raise PaymentUnavailable(f"the payment is {current.status}; voiding it again later")
        return current

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int | None,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        params: dict[str, Any] = {"payment_intent": intent_id}
        if amount is not None:
            params["amount"] = to_stripe(amount, currency)
        asked = {**params, "metadata": dict(metadata)} if metadata else params
        options: dict[str, Any] = {"idempotency_key": idempotency_key}
        with translated():
            try:
                refund = await self._client.v1.refunds.create_async(asked, options)  # type: ignore[arg-type]
            except stripe.IdempotencyError as exc:
                if asked is params or exc.http_status == 409:
                    raise
                # The key's first call came from a release that sent no metadata, and its
                # answer was lost: Stripe refuses other parameters under that key. Asked
                # as it was asked, Stripe replays that refund (never a second one).
                refund = await self._client.v1.refunds.create_async(params, options)  # type: ignore[arg-type]
        return _refund(refund)


def _webhook_event(event_id: str, type: str, obj: dict[str, Any]) -> WebhookEvent:
    """The payment an event is about: a PaymentIntent's own events carry the intent, the
    ``charge.*`` ones (``charge.refunded``) its Charge, which names the intent in
    ``payment_intent`` and carries its metadata (Stripe copies it to the charge), the
    ``refund.*`` ones the Refund, which names its intent too."""
    metadata = obj.get("metadata") or {}
    if obj.get("object") == "payment_intent":
        intent_id, status = str(obj["id"]), obj.get("status")
    elif obj.get("object") == "charge" and obj.get("payment_intent"):
        intent = obj["payment_intent"]  # an id; the intent itself only where expanded
        intent_id = str(intent["id"] if isinstance(intent, dict) else intent)
        # A charge's status (succeeded, pending, failed) says whether its money moved, not
        # where the intent stands: a refunded charge's intent may be succeeded, or canceled
        # (a released hold refunds the uncaptured charge). Left unsaid: where a payment
        # stands is asked of Stripe, never read from a webhook (WebhookService.receive).
        status = None
    elif obj.get("object") == "refund" and obj.get("payment_intent"):
        # A refund's own events (``refund.failed``): about the refund, which names its
        # intent; the refund's metadata is ours (``return_id``), not the intent's.
        intent = obj["payment_intent"]
        return WebhookEvent(
            event_id=event_id,
            type=type,
            intent_id=str(intent["id"] if isinstance(intent, dict) else intent),
            refund_id=str(obj["id"]),
            failure_reason=obj.get("failure_reason"),
        )
    else:
        return WebhookEvent(event_id=event_id, type=type)
    return WebhookEvent(
        event_id=event_id,
        type=type,
        intent_id=intent_id,
        intent_status=status,
        order_id=metadata.get("order_id"),
    )


def _refund(refund: Any) -> RefundResult:
    metadata = getattr(refund, "metadata", None)
    return RefundResult(
        refund_id=refund.id,
        amount=from_stripe(int(refund.amount), str(refund.currency)),
        status=str(refund.status),
        metadata={str(k): str(v) for k, v in (metadata.to_dict() if metadata else {}).items()},
        failure_reason=getattr(refund, "failure_reason", None),
    )
