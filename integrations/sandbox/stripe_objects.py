"""What the Stripe sandbox's calls stand on: Stripe's errors, ids and amount rules, the
rows of its objects, the answers kept under idempotency keys beside them, and the
events it sends, signed as Stripe signs webhooks."""

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

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from integrations.payments.stripe_units import stripe_step
from models.base import utcnow
from models.sandbox import SandboxStripeObject


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


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with a webhook."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


@dataclass
class Event:
    payload: str
    signature: str


class StripeObjects:
    """The sandbox's store: its objects' rows (read locked, written back), the answers
    kept under idempotency keys, and the events to send once the change commits."""

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


def whole_steps(amount: int, currency: str) -> None:
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
