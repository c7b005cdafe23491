"""The Stripe adapter (``StripeGateway``) through the real SDK against the sandbox:
manual capture, idempotency by key, error mapping, voids and full/partial refunds."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
import stripe
from pydantic import SecretStr

from cli.stack.process import free_port
from core.errors import WebhookSecretMissing
from core.settings import SANDBOX_WEBHOOK_SECRET, Settings
from integrations.payments.gateway import (
    IntentStatus,
    InvalidPaymentMethod,
    InvalidSignature,
    PaymentDeclined,
    PaymentUnavailable,
    WebhookEvent,
)
from integrations.payments.stripe import StripeGateway
from tests.live import live_api


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    live = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(live) as base:
        yield live, base


@pytest.fixture
async def gateway(api: tuple[Settings, str]) -> AsyncIterator[StripeGateway]:
    live, base = api
    yield StripeGateway.from_settings(live.model_copy(update={"stripe_max_network_retries": 0}))
    async with httpx.AsyncClient(base_url=base) as http:
        await http.delete("/_sandbox/stripe/faults")


def _order() -> str:
    return f"ord_gw_{uuid4().hex[:12]}"


async def _authorize(gateway: StripeGateway, order: str, **kwargs: Any) -> Any:
    params: dict[str, Any] = {"amount": 4200, "currency": "USD", "payment_method": "pm_card_visa"}
    params |= kwargs
    created = await gateway.create(order_id=order, idempotency_key=f"{order}:create", **params)
    return await gateway.confirm(created.intent_id, idempotency_key=f"{order}:confirm")


async def test_authorise_is_idempotent_then_capture_and_refund_in_parts(
    gateway: StripeGateway,
) -> None:
    order = _order()
    created = await gateway.create(
        order_id=order,
        amount=4200,
        currency="USD",
        payment_method="pm_card_visa",
        idempotency_key=f"{order}:create",
    )
    assert created.status is IntentStatus.REQUIRES_CONFIRMATION  # nothing held yet
    held = await _authorize(gateway, order)
    assert held.intent_id == created.intent_id  # the same key is the same intent
    assert (held.status, held.amount, held.currency) == (IntentStatus.AUTHORIZED, 4200, "USD")
    assert held.order_id == order
    again = await _authorize(gateway, order)
    assert again.intent_id == held.intent_id  # confirming again holds nothing more
    assert again.status is IntentStatus.AUTHORIZED
    captured = await gateway.capture(held.intent_id, idempotency_key=f"{order}:capture")
    assert (captured.status, captured.amount_captured) == (IntentStatus.CAPTURED, 4200)
    # Capturing again (an answer lost, a retried activity) reports the capture.
    replay = await gateway.capture(held.intent_id, idempotency_key=f"{order}:capture-2")
    assert replay.amount_captured == 4200
    part = await gateway.refund(
        held.intent_id, amount=1200, currency="USD", idempotency_key=f"{order}:r1"
    )
    assert part.amount == 1200
    rest = await gateway.refund(
        held.intent_id, amount=None, currency="USD", idempotency_key=f"{order}:r2"
    )
    assert rest.amount == 3000
    final = await gateway.retrieve(held.intent_id)
    assert final.amount_refunded == 4200


async def test_a_void_releases_the_hold_and_is_repeatable(gateway: StripeGateway) -> None:
    order = _order()
    held = await _authorize(gateway, order)
    voided = await gateway.void(held.intent_id, idempotency_key=f"{order}:void")
    assert voided.status is IntentStatus.CANCELED
    again = await gateway.void(held.intent_id, idempotency_key=f"{order}:void")
    assert again.status is IntentStatus.CANCELED


async def test_errors_are_mapped_to_retryable_or_final(
    gateway: StripeGateway, api: tuple[Settings, str]
) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        await _authorize(
            gateway, _order(), payment_method="pm_card_chargeDeclinedInsufficientFunds"
        )
    assert declined.value.code == "payment_declined"
    assert declined.value.extra["reason"] == "insufficient_funds"
    assert not declined.value.retryable

    with pytest.raises(InvalidPaymentMethod):
        await _authorize(gateway, _order(), payment_method="")

    async with httpx.AsyncClient(base_url=api[1]) as http:
        for status in (500, 503):
            await http.put("/_sandbox/stripe/faults", json={"status": status})
            with pytest.raises(PaymentUnavailable) as unavailable:
                await _authorize(gateway, _order())
            assert unavailable.value.retryable
        await http.delete("/_sandbox/stripe/faults")


async def test_the_sdk_retries_transient_failures_with_the_same_key(
    api: tuple[Settings, str],
) -> None:
    live, base = api
    patient = StripeGateway.from_settings(
        live.model_copy(update={"stripe_max_network_retries": 12})
    )
    async with httpx.AsyncClient(base_url=base) as http:
        await http.put("/_sandbox/stripe/faults", json={"failureRate": 0.5})
        try:
            orders = [_order() for _ in range(6)]
            held = [await _authorize(patient, o) for o in orders]
        finally:
            await http.delete("/_sandbox/stripe/faults")
    assert all(h.status is IntentStatus.AUTHORIZED for h in held)


async def test_a_refund_keeps_its_metadata_and_a_key_first_used_without_it_is_replayed(
    gateway: StripeGateway,
) -> None:
    """A return's refund carries ``return_id`` on Stripe's refund, listed with it. Its key
    first used by a release that sent no metadata (its answer lost) is asked again as it
    was: Stripe replays that refund rather than refusing the changed parameters."""
    order = _order()
    held = await _authorize(gateway, order)
    await gateway.capture(held.intent_id, idempotency_key=f"{order}:capture")
    tagged = await gateway.refund(
        held.intent_id,
        amount=1000,
        currency="USD",
        idempotency_key=f"{order}:a",
        metadata={"return_id": "ret_a"},
    )
    assert tagged.metadata == {"return_id": "ret_a"}
    untagged = await gateway.refund(
        held.intent_id, amount=700, currency="USD", idempotency_key=f"{order}:b"
    )
    again = await gateway.refund(
        held.intent_id,
        amount=700,
        currency="USD",
        idempotency_key=f"{order}:b",
        metadata={"return_id": "ret_b"},
    )
    assert again.refund_id == untagged.refund_id
    assert [(r.refund_id, r.amount, r.metadata) for r in await gateway.refunds(held.intent_id)] == [
        (tagged.refund_id, 1000, {"return_id": "ret_a"}),
        (untagged.refund_id, 700, {}),
    ]
    assert (await gateway.retrieve(held.intent_id)).amount_refunded == 1700


def _stripe_event(type: str, obj: dict[str, Any], secret: str) -> tuple[bytes, str]:
    """An event as Stripe delivers it: the JSON body and its ``Stripe-Signature``
    (HMAC-SHA256 of ``{t}.{body}`` with the endpoint's secret)."""
    body = json.dumps(
        {
            "id": "evt_3QxRfa2eZvKYlo2C1kq8Lr0d",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": obj, "previous_attributes": {"amount_refunded": 0}},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": "req_Vb2mQk1xFz0aRt", "idempotency_key": "ord_x:refund"},
            "type": type,
        }
    ).encode()
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},v1={mac}"


# A Charge as Stripe's API reference shows it (API version 2024-06-20: no ``refunds``).
CHARGE: dict[str, Any] = {
    "id": "ch_3QxRfZ2eZvKYlo2C0pYcKq7b",
    "object": "charge",
    "amount": 3787,
    "amount_captured": 3787,
    "amount_refunded": 2125,
    "application": None,
    "application_fee": None,
    "application_fee_amount": None,
    "balance_transaction": "txn_3QxRfZ2eZvKYlo2C0w3vTq1n",
    "billing_details": {
        "address": {
            "city": None,
            "country": None,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": None,
        "name": None,
        "phone": None,
    },
    "calculated_statement_descriptor": "SHOPWEAVE",
    "captured": True,
    "created": 1765000000,
    "currency": "usd",
    "customer": None,
    "description": "Shopweave order ord_gw_charge",
    "disputed": False,
    "failure_balance_transaction": None,
    "failure_code": None,
    "failure_message": None,
    "fraud_details": {},
    "livemode": False,
    "metadata": {"order_id": "ord_gw_charge"},
    "on_behalf_of": None,
    "outcome": {
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "Payment complete.",
        "type": "authorized",
    },
    "paid": True,
    "payment_intent": "pi_3QxRfZ2eZvKYlo2C0d9Hh4Xs",
    "payment_method": "pm_1QxRfY2eZvKYlo2CbM5rTz8u",
    "payment_method_details": {
        "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2030},
        "type": "card",
    },
    "receipt_email": None,
    "receipt_number": None,
    "receipt_url": "https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF8x",
    "refunded": False,
    "review": None,
    "shipping": None,
    "source": None,
    "source_transfer": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "status": "succeeded",
    "transfer_data": None,
    "transfer_group": None,
}


def test_a_charge_refunded_event_is_about_the_charge_s_payment_intent() -> None:
    """Stripe's ``charge.refunded`` carries the Charge: its ``payment_intent`` and the
    metadata copied from the intent name the payment and order. The charge's status is
    not the intent's, so none is said."""
    gateway = StripeGateway(stripe.StripeClient("sk_test_unit"), "whsec_unit")
    event = gateway.verify_webhook(*_stripe_event("charge.refunded", CHARGE, "whsec_unit"))
    assert event == WebhookEvent(
        event_id="evt_3QxRfa2eZvKYlo2C1kq8Lr0d",
        type="charge.refunded",
        intent_id="pi_3QxRfZ2eZvKYlo2C0d9Hh4Xs",
        intent_status=None,
        order_id="ord_gw_charge",
    )
    # A charge of no PaymentIntent (the legacy Charges API) is about no payment of ours.
    legacy = CHARGE | {"payment_intent": None, "metadata": {}}
    alone = gateway.verify_webhook(*_stripe_event("charge.refunded", legacy, "whsec_unit"))
    assert (alone.type, alone.intent_id, alone.order_id) == ("charge.refunded", None, None)
    # A PaymentIntent's own event still says its status.
    intent = {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "metadata": {}}
    own = gateway.verify_webhook(*_stripe_event("payment_intent.succeeded", intent, "whsec_unit"))
    assert (own.intent_id, own.intent_status, own.order_id) == ("pi_1", "succeeded", None)


def test_a_refund_failed_event_is_about_the_refund_and_its_payment_intent() -> None:
    """``refund.failed`` carries the Refund (its bank sent it back): the refund, why, and
    the intent it names. Its metadata is ours (``return_id``), no order id."""
    gateway = StripeGateway(stripe.StripeClient("sk_test_unit"), "whsec_unit")
    refund = {
        "id": "re_3QxRfZ2eZvKYlo2C0aBcDeFg",
        "object": "refund",
        "amount": 2125,
        "charge": "ch_3QxRfZ2eZvKYlo2C0pYcKq7b",
        "currency": "usd",
        "failure_balance_transaction": "txn_3QxRfZ2eZvKYlo2C1zYxWvUt",
        "failure_reason": "expired_or_canceled_card",
        "metadata": {"return_id": "ret_1"},
        "payment_intent": "pi_3QxRfZ2eZvKYlo2C0d9Hh4Xs",
        "status": "failed",
    }
    event = gateway.verify_webhook(*_stripe_event("refund.failed", refund, "whsec_unit"))
    assert event == WebhookEvent(
        event_id="evt_3QxRfa2eZvKYlo2C1kq8Lr0d",
        type="refund.failed",
        intent_id="pi_3QxRfZ2eZvKYlo2C0d9Hh4Xs",
        refund_id="re_3QxRfZ2eZvKYlo2C0aBcDeFg",
        failure_reason="expired_or_canceled_card",
    )


def test_a_real_stripe_key_without_a_webhook_secret_refuses_the_sandbox_s_signature(
    settings: Settings,
) -> None:
    """The sandbox's secret is public (in ``core/settings/providers.py``): with
    STRIPE_SECRET_KEY set the payments are Stripe's own, and a webhook signed with that
    secret is anyone's, even outside production. Only STRIPE_WEBHOOK_SECRET verifies then."""
    intent = {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "metadata": {}}
    assert settings.resolved_stripe_webhook_secret == SANDBOX_WEBHOOK_SECRET
    real = settings.model_copy(update={"stripe_secret_key": SecretStr("sk_test_real")})
    assert real.sandboxes_enabled
    assert real.resolved_stripe_webhook_secret is None
    forged = _stripe_event("payment_intent.succeeded", intent, SANDBOX_WEBHOOK_SECRET)
    with pytest.raises(WebhookSecretMissing) as missing:
        StripeGateway.from_settings(real).verify_webhook(*forged)
    assert (missing.value.status, missing.value.code) == (503, "webhook_secret_missing")
    configured = real.model_copy(update={"stripe_webhook_secret": SecretStr("whsec_real")})
    gateway = StripeGateway.from_settings(configured)
    with pytest.raises(InvalidSignature):
        gateway.verify_webhook(*forged)
    own = _stripe_event("payment_intent.succeeded", intent, "whsec_real")
    assert gateway.verify_webhook(*own).intent_id == "pi_1"


def test_a_signature_not_ascii_or_a_signed_body_not_an_event_is_a_400_not_a_crash() -> None:
    """A ``Stripe-Signature`` with non-ASCII text (the SDK's comparison raises TypeError)
    is forged like any other; a signed body that is JSON but not an event (no id, type or
    ``data.object``) is ``invalid_payload``, as the endpoint says, not a 500."""
    gateway = StripeGateway(stripe.StripeClient("sk_test_unit"), "whsec_unit")
    body, _ = _stripe_event("payment_intent.succeeded", {"object": "payment_intent"}, "x")
    with pytest.raises(InvalidSignature) as forged:
        gateway.verify_webhook(body, f"t={int(time.time())},v1=\xe9t\xe9")
    assert forged.value.code == "invalid_signature"
    for shape in (b"[]", b'"x"', b"{}", b'{"id":"evt_1","type":"x","data":{}}', body):
        t = int(time.time())
        mac = hmac.new(b"whsec_unit", f"{t}.".encode() + shape, hashlib.sha256).hexdigest()
        with pytest.raises(InvalidSignature) as wrong:
            gateway.verify_webhook(shape, f"t={t},v1={mac}")
        assert wrong.value.code == "invalid_payload", shape
