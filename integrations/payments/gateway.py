"""The ``PaymentGateway`` protocol: authorise, capture, void and refund, idempotently.

Every call takes an idempotency key the caller derives from (order id, operation), so a
retried or replayed activity repeats the same provider request instead of a new charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from core.errors import DependencyUnavailable, ShopError


class IntentStatus(StrEnum):
    """Where a payment stands at the provider, in our words."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"  # declined or failed 3-D Secure
    REQUIRES_CONFIRMATION = "requires_confirmation"  # created, nothing held yet
    REQUIRES_ACTION = "requires_action"  # the customer must authenticate
    AUTHORIZED = "authorized"  # funds held, not captured
    CAPTURED = "captured"
    CANCELED = "canceled"
    PROCESSING = "processing"


@dataclass(frozen=True)
class IntentState:
    """A payment at the provider. Every amount here (and in ``RefundResult``) is in ISO
    4217 minor units of ``currency``, ours: an adapter converts from the provider's own
    (``integrations.payments.stripe_units``: Stripe writes ISK with two decimals)."""

    intent_id: str
    status: IntentStatus
    amount: int
    currency: str
    amount_captured: int
    amount_refunded: int
    next_action_url: str | None = None
    failure_code: str | None = None
    order_id: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """A provider's webhook whose signature verified. The ``intent_*`` fields are set
    for events about a payment; ``intent_status`` (in the provider's own words) only
    where the event carries the intent itself, not one of its charges."""

    event_id: str
    type: str
    intent_id: str | None = None
    intent_status: str | None = None
    order_id: str | None = None
    # Set for events about a refund (``refund.failed``): which, and why it failed.
    refund_id: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount: int
    status: str
    # What the refund was asked with (``return_id`` for a return's): Stripe keeps it on
    # the refund, so a refund whose answer was lost can still be told apart.
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Why a ``failed`` refund failed (Stripe's ``failure_reason``): the card's bank sent
    # it back, after Stripe had answered ``succeeded``.
    failure_reason: str | None = None

    @property
    def failed(self) -> bool:
        """It moved no money in the end (``failed``, or ``canceled`` before it moved)."""
        return self.status in ("failed", "canceled")


# The most one PaymentIntent may be for: Stripe takes amounts of up to eight digits
# (999,999.99 USD). Checked before an order is priced for good (``OrderService.price``).
MAX_CHARGE = 99_999_999
# The least, in minor units, by currency: Stripe's "Minimum and maximum charge amounts"
# (docs.stripe.com/currencies, read 2026-12-07), every currency its table names. Below it
# Stripe refuses the PaymentIntent (``amount_too_small``). The table is by settlement
# currency: a charge in another currency must come to the settlement currency's minimum
# once converted, which no fixed figure says; those take USD's 50 minor units here.
# Until 2026-12-07 only six were listed: 1.00 HUF (Stripe's least is 175.00), 5.00 MXN
# or 3.00 THB passed validate-order and Stripe refused them at process-payment.
MIN_CHARGE = {
    "USD": 50,  # $0.50
    "AED": 200,  # 2.00 AED
    "AUD": 50,  # $0.50
    "BGN": 100,  # 1.00 лв
    "BRL": 50,  # R$0.50
    "CAD": 50,  # $0.50
    "CHF": 50,  # 0.50 Fr
    "CZK": 1500,  # 15.00 Kč
    "DKK": 250,  # 2.50 kr.
    "EUR": 50,  # €0.50
    "GBP": 30,  # £0.30
    "HKD": 400,  # $4.00
    "HUF": 17500,  # 175.00 Ft
    "INR": 50,  # ₹0.50
    "JPY": 50,  # ¥50 (no minor unit)
    "MXN": 1000,  # $10
    "MYR": 200,  # RM 2
    "NOK": 300,  # 3.00 kr.
    "NZD": 50,  # $0.50
    "PLN": 200,  # 2.00 zł
    "RON": 200,  # 2.00 lei
    "SEK": 300,  # 3.00 kr.
    "SGD": 50,  # $0.50
    "THB": 1000,  # ฿10
}


def min_charge(currency: str) -> int:
    """The smallest amount one PaymentIntent in ``currency`` may be for."""
    return MIN_CHARGE.get(currency.upper(), 50)


class PaymentDeclined(ShopError):
    status = 402
    code = "payment_declined"
    title = "The payment was declined"


class InvalidPaymentMethod(ShopError):
    status = 422
    code = "invalid_payment_method"
    title = "The payment method cannot be used"


class PaymentRejected(ShopError):
    """The provider refused the request itself (not the card): retrying will not help."""

    status = 502
    code = "payment_error"
    title = "The payment provider rejected the request"


class PaymentUnavailable(DependencyUnavailable):
    """Rate limits, 5xx answers and network errors: worth retrying with the same key."""

    code = "payment_unavailable"
    title = "The payment provider is unavailable"


class InvalidSignature(ShopError):
    code = "invalid_signature"
    title = "The webhook signature does not verify"


class PaymentGateway(Protocol):
    name: str

    async def create(
        self,
        *,
        order_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
    ) -> IntentState:
        """A manual-capture payment for the order, not yet confirmed (nothing is held):
        its id is saved before anything can be held, so a void always finds it."""
        ...

    async def confirm(
        self, intent_id: str, *, idempotency_key: str, return_url: str | None = None
    ) -> IntentState:
        """Authorise it: ``authorized``, or ``requires_action`` (3-D Secure). Raises
        ``PaymentDeclined``."""
        ...

    async def retrieve(self, intent_id: str) -> IntentState: ...

    async def capture(self, intent_id: str, *, idempotency_key: str) -> IntentState:
        """Capture the authorised amount; capturing a captured payment returns it."""
        ...

    async def void(self, intent_id: str, *, idempotency_key: str) -> IntentState:
        """Release an authorisation; a payment already voided is returned as it is."""
        ...

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int | None,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        """Refund ``amount`` (all that is left when None) of a captured payment in
        ``currency`` (the payment's: it says what ``amount``'s minor units are), with
        ``metadata`` kept on the refund."""
        ...

    async def refunds(self, intent_id: str) -> list[RefundResult]:
        """The payment's refunds that moved (or are moving) money, oldest first."""
        ...

    async def retrieve_refund(self, refund_id: str) -> RefundResult:
        """Where the refund stands now (an idempotent replay answers where it stood when
        it was made: ``succeeded``, though it failed since)."""
        ...

    def verify_webhook(self, payload: bytes, signature: str) -> WebhookEvent:
        """The event a webhook carries, if ``signature`` proves the provider sent it.
        Raises ``InvalidSignature``; ``DependencyUnavailable`` if no secret is set."""
        ...
