"""The Stripe sandbox's Refunds: made against a succeeded PaymentIntent (never more than
it has left), listed and retrieved, and failed later as a card's bank sends one back."""

from __future__ import annotations

import time
from typing import Any

from sqlmodel import col, select

from integrations.sandbox.stripe_objects import (
    StripeObjects,
    invalid_request,
    new_id,
    whole_steps,
)
from integrations.sandbox.stripe_wire import charge, charge_id
from models.sandbox import SandboxStripeObject


class StripeRefunds(StripeObjects):
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
        whole_steps(amount, intent["currency"])
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


def _moved(refunds: list[dict[str, Any]]) -> int:
    """What ``refunds`` took off the charge: a failed one gave its money back."""
    return sum(r["amount"] for r in refunds if r["status"] in ("succeeded", "pending"))
