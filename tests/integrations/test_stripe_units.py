"""Stripe's ``amount`` for each currency, against ours (ISO 4217 minor units), and the
Stripe sandbox keeping Stripe's rules on it (docs.stripe.com/currencies)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from core.money import exponent
from integrations.payments.gateway import PaymentRejected, min_charge
from integrations.payments.stripe_units import (
    THREE_DECIMAL,
    WHOLE_UNITS_AS_TWO_DECIMAL,
    ZERO_DECIMAL,
    AmountNotRepresentable,
    from_stripe,
    max_charge,
    to_stripe,
)
from integrations.sandbox.stripe import StripeSandbox
from integrations.sandbox.stripe_objects import StripeError

# (currency, ours, Stripe's): ISK and UGX are whole units written with two decimals
# (5 ISK is 500), MGA is two decimals to ISO and none to Stripe, HUF and TWD are
# two-decimal for charges (their divisible-by-100 rule is for payouts), JPY and KWD are
# what ISO says.
SAME_AMOUNT_BOTH_WAYS = [
    ("ISK", 4200, 420000),
    ("UGX", 5, 500),
    ("MGA", 150000, 1500),
    ("HUF", 1045, 1045),
    ("TWD", 80045, 80045),
    ("JPY", 500, 500),
    ("KWD", 5120, 5120),
    ("USD", 9999, 9999),
]


@pytest.mark.parametrize(("currency", "ours", "stripes"), SAME_AMOUNT_BOTH_WAYS)
def test_an_amount_is_sent_in_stripes_units_and_read_back_as_ours(
    currency: str, ours: int, stripes: int
) -> None:
    assert to_stripe(ours, currency) == stripes
    assert to_stripe(ours, currency.lower()) == stripes
    assert from_stripe(stripes, currency.lower()) == ours


@pytest.mark.parametrize(
    ("currency", "amount", "multiple_of"),
    [("MGA", 150050, 100), ("KWD", 5124, 10), ("BHD", 1, 10)],
)
def test_an_amount_stripe_cannot_take_exactly_is_refused_not_rounded(
    currency: str, amount: int, multiple_of: int
) -> None:
    with pytest.raises(AmountNotRepresentable) as refused:
        to_stripe(amount, currency)
    assert (refused.value.code, refused.value.status) == ("amount_not_representable", 422)
    assert refused.value.extra == {
        "amount": amount,
        "currency": currency,
        "multipleOf": multiple_of,
    }


@pytest.mark.parametrize("currency", ["IQD", "LYD", "CLF", "UYW", "UYI"])
def test_a_currency_stripes_rules_do_not_define_is_refused(currency: str) -> None:
    """ISO exponent other than 2 and none of Stripe's named cases: no amount is guessed."""
    assert exponent(currency) != 2
    with pytest.raises(AmountNotRepresentable):
        to_stripe(1000, currency)
    with pytest.raises(PaymentRejected):
        from_stripe(1000, currency)


def test_a_stripe_amount_that_is_none_of_ours_is_not_rounded() -> None:
    with pytest.raises(PaymentRejected) as rejected:
        from_stripe(550, "isk")  # 5.50 ISK: Stripe refuses fractions of krónur
    assert rejected.value.extra["reason"] == "amount_not_representable"


def test_every_named_currency_differs_from_iso_only_where_stripe_says() -> None:
    """The zero-decimal list is ISO's exponent 0 but MGA (2), the two special cases are
    ISO's 0, the three-decimal ones ISO's 3: the table and ``core.money`` agree on the
    rest."""
    assert {c for c in ZERO_DECIMAL if exponent(c) != 0} == {"MGA"}
    assert {exponent(c) for c in WHOLE_UNITS_AS_TWO_DECIMAL} == {0}
    assert {exponent(c) for c in THREE_DECIMAL} == {3}


def test_the_largest_charge_is_stripes_eight_digits_in_our_units() -> None:
    assert max_charge("USD", 99_999_999) == 99_999_999
    assert max_charge("ISK", 99_999_999) == 999_999  # 99,999,900 to Stripe
    assert max_charge("MGA", 99_999_999) == 99_999_999  # our columns' limit, not Stripe's


async def test_the_sandbox_keeps_stripes_rules_on_its_units(db_session: AsyncSession) -> None:
    """As Stripe: an ISK amount is written with two decimals that are 00, a KWD amount's
    last digit is 0, and the minimum is in Stripe's units (50 ISK is 5000)."""
    sandbox = StripeSandbox(db_session, base_url="http://sandbox", webhook_secret="whsec_units")

    async def intent(amount: int, currency: str) -> dict[str, object]:
        return await sandbox.create_intent(
            {
                "amount": str(amount),
                "currency": currency,
                "payment_method": "pm_card_visa",
                "capture_method": "manual",
            }
        )

    for amount, currency, code in (
        (420050, "isk", "invalid_charge_amount"),
        (5124, "kwd", "invalid_charge_amount"),
        (4900, "isk", "amount_too_small"),
    ):
        with pytest.raises(StripeError) as refused:
            await intent(amount, currency)
        assert (refused.value.status, refused.value.error["code"]) == (400, code), currency
    made = await intent(420000, "isk")
    assert (made["amount"], made["currency"]) == (420000, "isk")
    await sandbox.confirm(str(made["id"]), {})
    await sandbox.capture(str(made["id"]), {})
    with pytest.raises(StripeError) as refused:
        await sandbox.refund({"payment_intent": made["id"], "amount": "1250"})
    assert refused.value.error["code"] == "invalid_charge_amount"
    refund = await sandbox.refund({"payment_intent": made["id"], "amount": "1200"})
    assert (refund["amount"], refund["currency"]) == (1200, "isk")


# Stripe's "Minimum and maximum charge amounts" (docs.stripe.com/currencies, read
# 2026-12-07), written as Stripe writes them: every currency its table names.
STRIPES_MINIMUMS = {
    "USD": "0.50",
    "AED": "2.00",
    "AUD": "0.50",
    "BGN": "1.00",
    "BRL": "0.50",
    "CAD": "0.50",
    "CHF": "0.50",
    "CZK": "15.00",
    "DKK": "2.50",
    "EUR": "0.50",
    "GBP": "0.30",
    "HKD": "4.00",
    "HUF": "175.00",
    "INR": "0.50",
    "JPY": "50",
    "MXN": "10",
    "MYR": "2",
    "NOK": "3.00",
    "NZD": "0.50",
    "PLN": "2.00",
    "RON": "2.00",
    "SEK": "3.00",
    "SGD": "0.50",
    "THB": "10",
}


@pytest.mark.parametrize(("currency", "least"), sorted(STRIPES_MINIMUMS.items()))
async def test_the_minimum_charge_is_stripes_at_its_edge(
    db_session: AsyncSession, currency: str, least: str
) -> None:
    """validate-order's ``order_total_too_small`` and the sandbox's ``amount_too_small``
    both read ``min_charge``: the least Stripe charges is taken, a minor unit less is
    refused. Before, HUF and 12 others (AED, CZK, MXN, THB…) took USD's 50 minor units:
    1.00 HUF passed validate-order, and Stripe refused it at process-payment."""
    minimum = int(Decimal(least).scaleb(exponent(currency)))
    assert min_charge(currency) == minimum
    sandbox = StripeSandbox(db_session, base_url="http://sandbox", webhook_secret="whsec_min")

    async def intent(amount: int) -> dict[str, object]:
        return await sandbox.create_intent(
            {
                "amount": str(to_stripe(amount, currency)),
                "currency": currency.lower(),
                "payment_method": "pm_card_visa",
                "capture_method": "manual",
            }
        )

    with pytest.raises(StripeError) as refused:
        await intent(minimum - 1)
    assert refused.value.error["code"] == "amount_too_small"
    made = await intent(minimum)
    assert made["amount"] == to_stripe(minimum, currency)
