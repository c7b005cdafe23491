"""Stripe's ``amount`` and ours: the one conversion at the Stripe boundary.

Our amounts are ISO 4217 minor units (``core.money.exponent``: JPY 0, USD 2, KWD 3).
Stripe's ``amount`` is in *its* minor unit, which for a few currencies is not ISO's
(docs.stripe.com/currencies, "Specify amounts in API requests", read 2026-12-07):

- "Currencies are two-decimal currencies unless otherwise specified."
- Zero-decimal (the amount is whole units): BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND
  VUV XAF XOF XPF. All ISO exponent 0 but MGA, which ISO gives 2: 1,500.00 ariary is
  150000 to us and 1500 to Stripe, and 1,500.50 ariary is no amount Stripe can take.
- Special cases, ISK and UGX (ISO exponent 0; UGX is on the zero-decimal list too, the
  special case governs): "backward compatibility requires you to represent it as a
  two-decimal value, where the decimal amount is always 00. For example, to charge 5 ISK,
  provide an amount value of 500. You can't charge fractions of ISK."
- Special cases, HUF and TWD (ISO exponent 2): zero-decimal *for payouts* only ("even
  though you can charge two-decimal amounts"; a manual payout must be divisible by 100).
  We make charges and refunds, never payouts: they are ordinary two-decimal currencies.
- Three-decimal, BHD JOD KWD OMR TND (ISO exponent 3): "these API calls require the
  least-significant (last) digit to be 0" (PaymentIntents, Refunds): 5.124 KWD is no
  amount Stripe takes, 5.120 KWD is 5120.

A currency whose ISO exponent is not 2 and which Stripe's rules do not name (IQD, LYD,
CLF, UYW, UYI: none is a Stripe presentment currency) has no Stripe amount we could
vouch for: refused, never guessed.

``to_stripe`` is used for every amount we send, ``from_stripe`` for every amount we read
from a Stripe object (a PaymentIntent's ``amount`` and ``amount_received``, a Refund's
``amount``); the sandbox holds amounts in Stripe's units and keeps Stripe's rules on them
(``stripe_step``). Webhooks carry no amount we read: where a payment stands is asked of
Stripe (``StripeGateway.retrieve``).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ValidationFailed
from core.money import exponent, normalize_currency
from integrations.payments.gateway import PaymentRejected, min_charge

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
WHOLE_UNITS_AS_TWO_DECIMAL = frozenset({"ISK", "UGX"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class AmountNotRepresentable(ValidationFailed):
    """An amount Stripe cannot take exactly in its currency (fractions of ariary, a
    three-decimal amount not ending in 0, a currency Stripe's rules do not define):
    refused rather than charged or refunded as a different amount."""

    code = "amount_not_representable"
    title = "The payment provider cannot take this amount exactly"


@dataclass(frozen=True)
class StripeScale:
    """Stripe's ``amount`` is ours times ``up`` divided by ``down`` (one of them 1), and a
    multiple of ``step`` (in Stripe's units)."""

    up: int = 1
    down: int = 1
    step: int = 1

    @property
    def our_step(self) -> int:
        """What our amounts must be a multiple of (MGA 100: whole ariary; KWD 10)."""
        return max(self.step * self.down // self.up, 1)


def stripe_scale(currency: str) -> StripeScale | None:
    """How Stripe writes amounts of ``currency``; None when its rules do not say."""
    code = normalize_currency(currency)
    if code in WHOLE_UNITS_AS_TWO_DECIMAL:
        stripe_decimals, step = 2, 100
    elif code in ZERO_DECIMAL:
        stripe_decimals, step = 0, 1
    elif code in THREE_DECIMAL:
        stripe_decimals, step = 3, 10
    elif exponent(code) == 2:
        stripe_decimals, step = 2, 1
    else:
        return None
    shift = stripe_decimals - exponent(code)
    return StripeScale(up=10 ** max(shift, 0), down=10 ** max(-shift, 0), step=step)


def stripe_step(currency: str) -> int:
    """What every Stripe ``amount`` in ``currency`` is a multiple of (the sandbox's rule)."""
    scale = stripe_scale(currency)
    return scale.step if scale is not None else 1


def to_stripe(amount: int, currency: str) -> int:
    """``amount`` minor units of ``currency`` as Stripe's ``amount``; raises
    ``AmountNotRepresentable`` (422) when Stripe cannot take it exactly."""
    code = currency.upper()
    scale = stripe_scale(currency)
    if scale is None:
        raise AmountNotRepresentable(
            f"Stripe's rules do not say how to write amounts in {code} "
            f"({exponent(code)} decimals in ISO 4217)",
            amount=amount,
            currency=code,
        )
    if amount % scale.our_step:
        raise AmountNotRepresentable(
            f"{amount} minor units of {code} is no amount Stripe can take: it takes "
            f"multiples of {scale.our_step} minor units in {code}",
            amount=amount,
            currency=code,
            multipleOf=scale.our_step,
        )
    return amount * scale.up // scale.down


def from_stripe(amount: int, currency: str) -> int:
    """Stripe's ``amount`` in ``currency`` as our minor units, exactly. An amount that is
    none of ours (550 ISK: Stripe refuses fractions of krónur) is a Stripe we do not
    know: ``PaymentRejected``, never rounded."""
    scale = stripe_scale(currency)
    if scale is None or amount % scale.up:
        raise PaymentRejected(
            f"stripe: an amount of {amount} in {currency.upper()} is no amount in "
            f"{currency.upper()}'s minor units",
            reason="amount_not_representable",
        )
    return amount * scale.down // scale.up


def stripe_minimum(currency: str) -> int:
    """The least Stripe ``amount`` of a PaymentIntent in ``currency`` (the sandbox's
    ``amount_too_small``): ``min_charge`` in Stripe's units, up to a whole step."""
    scale = stripe_scale(currency)
    if scale is None:
        return min_charge(currency)
    least = -(-min_charge(currency) * scale.up // scale.down)
    return -(-least // scale.step) * scale.step


def max_charge(currency: str, stripe_limit: int) -> int:
    """The most we can charge in ``currency`` (our minor units) when Stripe's ``amount``
    may be at most ``stripe_limit``, and never more than ``stripe_limit`` itself (our
    columns hold that much, whatever the currency)."""
    scale = stripe_scale(currency)
    if scale is None:
        return stripe_limit
    return min(stripe_limit * scale.down // scale.up, stripe_limit)
