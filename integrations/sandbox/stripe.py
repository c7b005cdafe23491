"""The Stripe sandbox: PaymentIntents and Refunds as Stripe answers them, for the parts
we use, so the real ``stripe`` SDK is exercised end to end.

Test payment methods (Stripe's own): ``pm_card_visa`` and unknown tokens succeed;
``pm_card_chargeDeclined`` and ``pm_card_chargeDeclinedInsufficientFunds`` decline;
``pm_card_authenticationRequired`` needs 3-D Secure: the intent answers
``requires_action`` with a redirect URL into the sandbox, whose visit completes (or, with
``?outcome=fail``, fails) the authentication and sends the signed webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.settings import SANDBOX_WEBHOOK_SECRET
from integrations.payments.stripe_units import stripe_minimum, stripe_step
from integrations.sandbox.stripe_wire import charge, charge_id
from models.base import utcnow
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


class StripeError(Exception):
    """An error Stripe would answer, with its HTTP status and error object."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(
        400, {"type": "invalid_request_error", "message": message, "param": param, "code": code}
    )


# Idempotency answers are rows beside the objects (never listed: lists read by kind).
ANSWER_KIND = "idempotency"
ANSWER_KEPT = timedelta(hours=24)


def _answer_id(key: str) -> str:
    return f"idem_{hashlib.sha256(key.encode()).hexdigest()[:48]}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


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


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with a webhook."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


@dataclass
class Event:
    payload: str
    signature: str


class StripeSandbox:
    def __init__(
        self,
        session: AsyncSession,
        *,
        base_url: str,
        webhook_secret: str,
        enabled_events: Collection[str] = ("*",),
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.webhook_secret = webhook_secret
        # As a Stripe webhook endpoint's: the event types sent ("*": every one).
        self.enabled_events = frozenset(enabled_events)
        self.events: list[Event] = []  # to deliver after commit

    async def _get(self, object_id: str, kind: str, *, lock: bool = True) -> SandboxStripeObject:
        query = select(SandboxStripeObject).where(
            SandboxStripeObject.id == object_id, SandboxStripeObject.kind == kind
        )
        if lock:
            query = locked(query)
        row = (await self.session.exec(query)).first()
        if row is None:
            raise StripeError(
                404,
                {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such {kind}: '{object_id}'",
                    "param": "id",
                },
            )
        return row

    def _save(self, row: SandboxStripeObject, data: dict[str, Any]) -> dict[str, Any]:
        row.data = dict(data)
        self.session.add(row)
        return data

    async def kept_answer(self, key: str) -> dict[str, Any] | None:
        """The answer kept for an idempotency key within Stripe's 24 hours, if any."""
        row = await self.session.get(SandboxStripeObject, _answer_id(key))
        if row is None or row.created_at < utcnow() - ANSWER_KEPT:
            return None
        return dict(row.data)

    async def keep_answer(self, key: str, answer: dict[str, Any]) -> None:
        """Keep the answer under its key in this transaction, so it commits with the
        change it answers or not at all. (Kept in Redis after the commit, it was lost
        with an API process killed in between: the retry, its key free again, made a
        second PaymentIntent for one order in a chaos run.)"""
        row = await self.session.get(SandboxStripeObject, _answer_id(key))
        if row is None:
            row = SandboxStripeObject(id=_answer_id(key), kind=ANSWER_KIND, data={})
        row.created_at = utcnow()  # a key expired and used again starts its 24 hours
        self._save(row, answer | {"key": key})

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        if "*" not in self.enabled_events and kind not in self.enabled_events:
            return
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "data": {"object": obj},
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
        }
        payload = json.dumps(event)
        self.events.append(Event(payload, sign(payload, self.webhook_secret)))

    async def create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            raise invalid_request("Missing required param: amount.", "amount") from None
        currency = str(params.get("currency", "")).lower()
        if len(currency) != 3:
            raise invalid_request("Missing required param: currency.", "currency")
        _whole_steps(amount, currency)
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

    async def refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise invalid_request("Missing required param: payment_intent.", "payment_intent")
        row = await self._get(str(intent_id), "payment_intent")
        intent = dict(row.data)
        if intent["status"] != "succeeded":
            raise invalid_request(
                "This PaymentIntent does not have a successful charge to refund.",
                code="charge_not_refundable"
                if intent["status"] != "canceled"
                else "charge_already_refunded",
            )
        refunded = _moved(await self._refunds(intent["id"]))
        left = intent["amount_received"] - refunded
        amount = int(params.get("amount", left))
        _whole_steps(amount, intent["currency"])
        if amount < 1 or amount > left:
            raise invalid_request(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                "amount",
                "amount_too_large",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "charge": charge_id(intent),
            "status": "succeeded",
            "reason": params.get("reason"),
            "metadata": params.get("metadata") or {},
            "created": int(time.time()),
        }
        self.session.add(SandboxStripeObject(id=refund["id"], kind="refund", data=refund))
        await self.session.flush()
        # As Stripe sends it: about the intent's Charge (``payment_intent`` names the intent).
        self._event("charge.refunded", charge(intent, amount_refunded=refunded + amount))
        return refund

    async def fail_refund(self, refund_id: str, reason: str) -> dict[str, Any]:
        """The card's bank sends the refund back (a closed or expired card): as Stripe,
        the refund becomes ``failed`` with a ``failure_reason``, its money is the
        charge's again (refundable anew), and ``refund.failed`` is sent. A refund failed
        already is returned as it is."""
        row = await self._get(refund_id, "refund")
        refund = dict(row.data)
        if refund["status"] not in ("succeeded", "pending"):
            return refund
        refund.update(
            status="failed",
            failure_reason=reason,
            failure_balance_transaction=new_id("txn"),
        )
        self._save(row, refund)
        self._event("refund.failed", refund)
        return refund

    async def retrieve_refund(self, refund_id: str) -> dict[str, Any]:
        """``GET /v1/refunds/{id}``: the refund as it stands now (``failed`` once its
        card's bank sent it back)."""
        return dict((await self._get(refund_id, "refund", lock=False)).data)

    async def _refunds(self, intent_id: str) -> list[dict[str, Any]]:
        rows = await self.session.exec(
            select(SandboxStripeObject)
            .where(
                SandboxStripeObject.kind == "refund",
                col(SandboxStripeObject.data)["payment_intent"].astext == intent_id,
            )
            .order_by(col(SandboxStripeObject.seq).desc())
        )
        return [dict(r.data) for r in rows.all()]

    async def list_refunds(self, payment_intent: str | None, limit: int) -> dict[str, Any]:
        """``GET /v1/refunds``: a PaymentIntent's refunds (Stripe keeps the refunded total
        on the charge, not on the PaymentIntent), newest first."""
        if not payment_intent:
            raise invalid_request(
                "This sandbox lists refunds per payment_intent.", "payment_intent"
            )
        refunds = await self._refunds(payment_intent)
        return {
            "object": "list",
            "url": "/v1/refunds",
            "has_more": len(refunds) > limit,
            "data": refunds[:limit],
        }


def _whole_steps(amount: int, currency: str) -> None:
    """Stripe's ``amount`` rules beyond its minor unit: ISK and UGX are written with two
    decimals that are always ``00`` ("You can't charge fractions of ISK"), the
    three-decimal currencies' last digit must be 0 (``integrations.payments.stripe_units``)."""
    step = stripe_step(currency)
    if amount % step:
        raise invalid_request(
            f"Invalid amount: {currency.upper()} amounts must be a multiple of {step}.",
            "amount",
            "invalid_charge_amount",
        )


def _moved(refunds: list[dict[str, Any]]) -> int:
    """What ``refunds`` took off the charge: a failed one gave its money back."""
    return sum(r["amount"] for r in refunds if r["status"] in ("succeeded", "pending"))
