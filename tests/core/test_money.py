from __future__ import annotations

from decimal import Decimal

import pytest

from core.money import (
    Money,
    MoneyError,
    allocate,
    exponent,
    percent_of,
    price_currency,
    round_half_even,
)


def test_percent_of_rounds_half_to_even() -> None:
    assert percent_of(999, 10) == 100  # 99.9 -> 100
    assert percent_of(25, 10) == 2  # 2.5 -> 2 (even)
    assert percent_of(35, 10) == 4  # 3.5 -> 4 (even)
    assert percent_of(1999, "12.5") == 250  # 249.875 -> 250
    assert percent_of(10_000, Decimal("0.1")) == 10


def test_round_half_even_on_exact_fractions() -> None:
    assert round_half_even(Decimal("2.5")) == 2
    assert round_half_even(Decimal("3.5")) == 4
    assert round_half_even(Decimal("-2.5")) == -2


@pytest.mark.parametrize(
    ("amount", "weights"),
    [(100, [1, 1, 1]), (1000, [3333, 3333, 3334]), (7, [0, 5, 0]), (12345, [1, 2, 3, 4])],
)
def test_allocate_always_adds_up_exactly(amount: int, weights: list[int]) -> None:
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    assert all(p >= 0 for p in parts)
    # No part is more than one minor unit away from its exact share.
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - amount * weight / total) < 1


def test_allocate_refuses_negative_weights() -> None:
    with pytest.raises(MoneyError):
        allocate(10, [1, -1])


def test_money_from_major_uses_the_currency_exponent() -> None:
    assert Money.from_major("99.99", "usd") == Money(9999, "USD")
    assert Money.from_major("500", "JPY") == Money(500, "JPY")
    assert Money.from_major("1.234", "KWD") == Money(1234, "KWD")
    assert exponent("EUR") == 2
    with pytest.raises(MoneyError, match="precision"):
        Money.from_major("0.001", "USD")
    with pytest.raises(MoneyError, match="precision"):
        Money.from_major("1.5", "JPY")


def test_money_arithmetic_refuses_mixed_currencies_and_floats() -> None:
    assert Money(150, "USD") + Money(50, "USD") == Money(200, "USD")
    assert 3 * Money(150, "EUR") == Money(450, "EUR")
    with pytest.raises(MoneyError, match="combine"):
        _ = Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(MoneyError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1, "US")


def test_money_formats_plainly() -> None:
    assert Money(9999, "USD").format() == "99.99 USD"
    assert Money(5, "JPY").format() == "5 JPY"
    assert Money(-1050, "EUR").format() == "-10.50 EUR"


def test_a_price_is_in_an_iso_4217_currency_with_minor_units() -> None:
    assert price_currency(" jpy ") == "JPY"
    assert {price_currency(c) for c in ("USD", "KWD", "CLF", "XOF")} == {
        "USD",
        "KWD",
        "CLF",
        "XOF",
    }
    # Gold, the SDR and the test code have no minor unit; ZZZ and HRK (withdrawn) are none.
    for code in ("XAU", "XDR", "XTS", "XXX", "ZZZ", "HRK"):
        with pytest.raises(MoneyError):
            price_currency(code)


def test_money_formats_with_the_iso_4217_exponent() -> None:
    assert [Money(1234, c).format() for c in ("USD", "JPY", "KWD", "CLF", "UYI")] == [
        "12.34 USD",
        "1234 JPY",
        "1.234 KWD",
        "0.1234 CLF",
        "1234 UYI",
    ]
