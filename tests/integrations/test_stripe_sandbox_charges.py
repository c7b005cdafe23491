"""The Stripe sandbox's ``charge.refunded``: about the intent's Charge, as Stripe sends it,
not the PaymentIntent."""

from __future__ import annotations

import json
from typing import Any

import stripe
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.sandbox.stripe import StripeSandbox

SECRET = "whsec_charges"


def _sent(sandbox: StripeSandbox, type: str) -> list[dict[str, Any]]:
    """The objects of the events of ``type`` the sandbox signed, verified by the SDK."""
    sent = sandbox.events
    events = [stripe.Webhook.construct_event(e.payload, e.signature, SECRET) for e in sent]
    return [e["data"]["object"].to_dict() for e in events if e["type"] == type]


async def test_a_refund_sends_the_charge_of_the_intent(db_session: AsyncSession) -> None:
    sandbox = StripeSandbox(
        db_session,
        base_url="http://sandbox",
        webhook_secret=SECRET,
        enabled_events={"charge.refunded"},
    )
    intent = await sandbox.create_intent(
        {
            "amount": "3787",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "capture_method": "manual",
            "metadata": {"order_id": "ord_charges"},
        }
    )
    await sandbox.capture(intent["id"], {})
    part = await sandbox.refund({"payment_intent": intent["id"], "amount": "2125"})
    rest = await sandbox.refund({"payment_intent": intent["id"]})
    charge_id = (await sandbox.retrieve(intent["id"]))["latest_charge"]
    assert charge_id.startswith("ch_")
    assert part["charge"] == rest["charge"] == charge_id

    first, second = _sent(sandbox, "charge.refunded")
    assert first["object"] == "charge"
    assert first["id"] == second["id"] == charge_id
    assert first["payment_intent"] == intent["id"]
    assert first["metadata"] == {"order_id": "ord_charges"}  # the intent's, copied
    assert (first["amount"], first["amount_captured"], first["currency"]) == (3787, 3787, "usd")
    assert (first["amount_refunded"], first["refunded"]) == (2125, False)
    assert (second["amount_refunded"], second["refunded"]) == (3787, True)
    assert (first["status"], first["captured"], first["paid"]) == ("succeeded", True, True)
    # API version 2024-06-20: a charge no longer includes its refunds unless expanded.
    assert "refunds" not in first
    # Only the subscribed type was sent (not the capture's payment_intent.succeeded).
    assert [json.loads(e.payload)["type"] for e in sandbox.events] == ["charge.refunded"] * 2
