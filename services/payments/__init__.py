"""Payments for orders: authorise, capture, void or refund, and what webhooks tell us.

The ``payments`` row is written before the provider can hold money and updated with its
answer; ``payment_events`` keeps the history (our calls and the provider's webhooks,
the latter deduplicated by event id). Idempotency keys come from (order id, operation),
so a retried activity repeats the provider request instead of making a new one.

- ``service``: the order workflow's steps (``PaymentService``);
- ``refunds``: staff refunds; ``webhooks``: provider events;
- ``states``: the provider's answer mapped onto our row, forward only;
- ``repository``: all payment SQL.
"""

from services.payments.refunds import NotRefundable, RefundFailed, RefundOutcome, refund
from services.payments.repository import PaymentRepository
from services.payments.service import PaymentService
from services.payments.states import Authorization, apply_state, idempotency_key
from services.payments.webhooks import WebhookOutcome, WebhookService

__all__ = [
    "Authorization",
    "NotRefundable",
    "PaymentRepository",
    "PaymentService",
    "RefundFailed",
    "RefundOutcome",
    "WebhookOutcome",
    "WebhookService",
    "apply_state",
    "idempotency_key",
    "refund",
]
