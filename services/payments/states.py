"""Where a payment stands: the provider's answer mapped onto our row, forward only."""

from __future__ import annotations

from pydantic import BaseModel

from integrations.payments.gateway import IntentState, IntentStatus
from models.base import utcnow
from models.payments import Payment, PaymentStatus

_FROM_INTENT = {
    IntentStatus.REQUIRES_PAYMENT_METHOD: PaymentStatus.FAILED,
    IntentStatus.REQUIRES_CONFIRMATION: PaymentStatus.PENDING,
    IntentStatus.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    IntentStatus.AUTHORIZED: PaymentStatus.AUTHORIZED,
    IntentStatus.CAPTURED: PaymentStatus.CAPTURED,
    IntentStatus.CANCELED: PaymentStatus.VOIDED,
    IntentStatus.PROCESSING: PaymentStatus.PENDING,
}


# Payments only move forward: an answer that arrives late (a timed-out attempt that
# finished after all) never takes a payment back to an earlier state.
RANK = {
    PaymentStatus.PENDING: 0,
    PaymentStatus.REQUIRES_ACTION: 1,
    PaymentStatus.FAILED: 1,
    PaymentStatus.AUTHORIZED: 2,
    PaymentStatus.CAPTURED: 3,
    PaymentStatus.PARTIALLY_REFUNDED: 4,
    PaymentStatus.REFUNDED: 5,
    PaymentStatus.VOIDED: 5,
}


class Authorization(BaseModel):
    """Where an authorisation stands (also the payment activities' result)."""

    status: IntentStatus
    next_action_url: str | None = None
    failure_code: str | None = None


def idempotency_key(order_id: str, operation: str) -> str:
    return f"{order_id}:{operation}"


def apply_state(payment: Payment, state: IntentState) -> int:
    """Bring the row up to what the provider says, forward only; returns how much more
    has been refunded than the row knew (to publish ``payment.refunded`` once)."""
    current = PaymentStatus(payment.status)
    captured = max(payment.amount_captured, state.amount_captured)
    refunded = max(payment.amount_refunded, state.amount_refunded)
    newly_refunded = refunded - payment.amount_refunded
    status = _FROM_INTENT[state.status]
    if status == PaymentStatus.VOIDED and current == PaymentStatus.FAILED:
        # Cancelling a declined intent releases nothing: the payment stays declined.
        status = PaymentStatus.FAILED
    if refunded and captured:
        status = (
            PaymentStatus.REFUNDED if refunded >= captured else PaymentStatus.PARTIALLY_REFUNDED
        )
    payment.intent_id = payment.intent_id or state.intent_id
    payment.amount_captured, payment.amount_refunded = captured, refunded
    if RANK[status] >= RANK[current]:
        payment.status = status
        if status == PaymentStatus.FAILED:
            payment.failure_code = state.failure_code
    payment.updated_at = utcnow()
    return newly_refunded


def refund_balance(payment: Payment, *, refunded: int | None = None) -> dict[str, int]:
    """What a ``payment.refunded`` event carries about the balance, as of this refund (the
    row brought up to date by ``apply_state``, or ``refunded`` in all when it is one of
    two announced at once): a later refund cannot change it."""
    total = payment.amount_refunded if refunded is None else refunded
    return {
        "captured": payment.amount_captured,
        "refundedTotal": total,
        "remaining": payment.amount_captured - total,
    }


def apply_decline(payment: Payment, failure_code: str) -> None:
    """A declined confirm fails a payment that had not got further (forward only)."""
    if RANK[PaymentStatus(payment.status)] <= RANK[PaymentStatus.FAILED]:
        payment.status = PaymentStatus.FAILED
        payment.failure_code = failure_code
        payment.updated_at = utcnow()
