"""Stripe objects the sandbox keeps no row for, rendered from the PaymentIntent they
belong to, in the wire format of the API version its events carry (2024-06-20)."""

from __future__ import annotations

from typing import Any


def charge_id(intent: dict[str, Any]) -> str:
    """The intent's charge: ``latest_charge`` as ``payment_intents.retrieve`` answers it
    (set when the card was authorised), so a refund, its event and the intent agree."""
    latest = intent.get("latest_charge")
    return str(latest) if latest else f"ch_{str(intent['id']).removeprefix('pi_')}"


def charge(intent: dict[str, Any], *, amount_refunded: int) -> dict[str, Any]:
    """The ``Charge`` of a captured PaymentIntent, as ``charge.refunded`` carries it.

    Stripe copies the intent's metadata to its charge (``metadata.order_id`` names the
    order here too). ``refunds`` is left out: since API version 2022-11-15 a charge no
    longer includes it unless expanded, and an event's object is never expanded (its
    refunds are listed with ``GET /v1/refunds?payment_intent=``)."""
    captured = int(intent["amount_received"])
    return {
        "id": charge_id(intent),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": captured,
        "amount_refunded": amount_refunded,
        "captured": captured > 0,
        "created": intent["created"],
        "currency": intent["currency"],
        "description": intent.get("description"),
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": dict(intent.get("metadata") or {}),
        "paid": True,
        "payment_intent": intent["id"],
        "payment_method": intent.get("payment_method"),
        # Stripe: "Whether the charge has been fully refunded" (false while partial).
        "refunded": amount_refunded >= captured,
        "status": "succeeded",
    }
