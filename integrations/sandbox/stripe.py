"""The Stripe sandbox: PaymentIntents and Refunds as Stripe answers them, for the parts
we use, so the real ``stripe`` SDK is exercised end to end.

Test payment methods (Stripe's own): ``pm_card_visa`` and unknown tokens succeed;
``pm_card_chargeDeclined`` and ``pm_card_chargeDeclinedInsufficientFunds`` decline;
``pm_card_authenticationRequired`` needs 3-D Secure: the intent answers
``requires_action`` with a redirect URL into the sandbox, whose visit completes (or, with
``?outcome=fail``, fails) the authentication and sends the signed webhook.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlmodel import col, select

from core.settings import SANDBOX_WEBHOOK_SECRET
from integrations.payments.stripe_units import stripe_minimum
from integrations.sandbox.stripe_objects import (
    StripeError,
    invalid_request,
    new_id,
    whole_steps,
)
from integrations.sandbox.stripe_refunds import StripeRefunds
from models.sandbox import SandboxStripeObject

__all__ = ["SANDBOX_WEBHOOK_SECRET", "StripeSandbox"]

DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_visa_chargeDeclined": "generic_decline",
}
NEEDS_3DS = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}
CANCELABLE = {
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "requires_capture",
}


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding: ``metadata[order_id]=…`` and ``expand[0]=…``."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if "[" in key:
            head, _, rest = key.partition("[")
            sub = rest.rstrip("]")
            result.setdefault(head, {})[sub] = value
        else:
            result[key] = value
    return result


def _bool(value: Any) -> bool:
    return str(value).lower() in ("true", "1")


class StripeSandbox(StripeRefunds):
    """PaymentIntents (this module) and Refunds (``StripeRefunds``) over one store of
    objects (``StripeObjects``)."""

    async def create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            raise invalid_request("Missing required param: amount.", "amount") from None
        currency = str(params.get("currency", "")).lower()
        if len(currency) != 3:
            raise invalid_request("Missing required param: currency.", "currency")
        whole_steps(amount, currency)
        if amount < stripe_minimum(currency):
            raise invalid_request(
                f"Amount must be at least {stripe_minimum(currency)} {currency} (in Stripe's "
                "amount units).",
                "amount",
                "amount_too_small",
            )
        capture = params.get("capture_method", "automatic")
        if capture not in ("automatic", "manual"):
            raise invalid_request("Invalid capture_method.", "capture_method")
        method = params.get("payment_method")
        intent_id = new_id("pi")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": currency,
            "capture_method": capture,
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "created": int(time.time()),
            "description": params.get("description"),
            "last_payment_error": None,
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "next_action": None,
            "payment_method": method,
            "payment_method_types": ["card"],
            "status": "requires_confirmation" if method else "requires_payment_method",
            "latest_charge": None,
        }
        row = SandboxStripeObject(id=intent_id, kind="payment_intent", data=intent)
        self.session.add(row)
        await self.session.flush()
        self._event("payment_intent.created", intent)
        if _bool(params.get("confirm", False)):
            return await self.confirm(intent_id, params)
        return intent

    async def confirm(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        row = await self._get(intent_id, "payment_intent")
        intent = dict(row.data)
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise invalid_request(
                f"This PaymentIntent's status is {intent['status']} and cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        method = params.get("payment_method") or intent.get("payment_method")
        if not method:
            raise invalid_request("You must provide a payment_method.", "payment_method")
        intent["payment_method"] = method
        if method in DECLINES:
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": DECLINES[method],
                "message": "Your card was declined.",
                "payment_method": {"id": method},
            }
            intent.update(status="requires_payment_method", last_payment_error=error)
            self._save(row, intent)
            self._event("payment_intent.payment_failed", intent)
            raise StripeError(402, error | {"payment_intent": intent})
        if method in NEEDS_3DS:
            url = f"{self.base_url}/3ds/{intent_id}"
            intent.update(
                status="requires_action",
                next_action={
                    "type": "redirect_to_url",
                    "redirect_to_url": {"url": url, "return_url": params.get("return_url")},
                },
            )
            self._save(row, intent)
            self._event("payment_intent.requires_action", intent)
            return intent
        return self._authorised(row, intent)

    def _authorised(self, row: SandboxStripeObject, intent: dict[str, Any]) -> dict[str, Any]:
        intent.update(next_action=None, last_payment_error=None, latest_charge=new_id("ch"))
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self._save(row, intent)
            self._event("payment_intent.amount_capturable_updated", intent)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._save(row, intent)
            self._event("payment_intent.succeeded", intent)
        return intent

    async def authenticate(self, intent_id: str, succeed: bool) -> dict[str, Any]:
        """The customer finishing (or failing) 3-D Secure on the redirect page."""
        row = await self._get(intent_id, "payment_intent")
        intent = dict(row.data)
        if intent["status"] != "requires_action":
            return intent  # a second visit changes nothing
        if succeed:
            return self._authorised(row, intent)
        error = {
            "type": "card_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication.",
        }
        intent.update(status="requires_payment_method", next_action=None, last_payment_error=error)
        self._save(row, intent)
        self._event("payment_intent.payment_failed", intent)
        return intent

    async def capture(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        row = await self._get(intent_id, "payment_intent")
        intent = dict(row.data)
        if intent["status"] != "requires_capture":
            raise invalid_request(
                f"This PaymentIntent could not be captured because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                "may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = int(params.get("amount_to_capture", intent["amount"]))
        if amount < 1 or amount > intent["amount"]:
            raise invalid_request("amount_to_capture is out of range.", "amount_to_capture")
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._save(row, intent)
        self._event("payment_intent.succeeded", intent)
        return intent

    async def cancel(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        row = await self._get(intent_id, "payment_intent")
        intent = dict(row.data)
        if intent["status"] not in CANCELABLE:
            raise invalid_request(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(
            status="canceled",
            amount_capturable=0,
            next_action=None,
            cancellation_reason=params.get("cancellation_reason"),
        )
        self._save(row, intent)
        self._event("payment_intent.canceled", intent)
        return intent

    async def retrieve(self, intent_id: str) -> dict[str, Any]:
        return dict((await self._get(intent_id, "payment_intent", lock=False)).data)

    async def list_intents(self, limit: int, starting_after: str | None) -> dict[str, Any]:
        query = select(SandboxStripeObject).where(SandboxStripeObject.kind == "payment_intent")
        if starting_after:
            anchor = await self._get(starting_after, "payment_intent", lock=False)
            query = query.where(col(SandboxStripeObject.seq) < anchor.seq)
        rows = (
            await self.session.exec(
                query.order_by(col(SandboxStripeObject.seq).desc()).limit(limit + 1)
            )
        ).all()
        return {
            "object": "list",
            "url": "/v1/payment_intents",
            "has_more": len(rows) > limit,
            "data": [r.data for r in rows[:limit]],
        }
