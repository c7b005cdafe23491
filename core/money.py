"""Money as integer minor units plus an ISO 4217 currency. Never floats.

All rounding is explicit and half-even (banker's rounding), so sums of rounded parts
do not drift upwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction

# ISO 4217 minor-unit exponents that differ from the usual 2 (the whole list, 2024).
_EXPONENTS: dict[str, int] = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}
# ISO 4217's currencies (and funds) with a minor unit, the ones a price can be in: the
# codes with none (gold XAU, the SDR XDR, the test code XTS, XXX) and the withdrawn
# ones (HRK, CUC) are not. A currency is 2 decimals unless _EXPONENTS says otherwise.
_ISO_4217_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
    BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK
    DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR
    ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD
    LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
    SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
    USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
"""
ISO_4217 = frozenset(_ISO_4217_CODES.split())
DEFAULT_CURRENCY = "USD"


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


def normalize_currency(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise MoneyError(f"not an ISO 4217 currency code: {code!r}")
    return code


def price_currency(code: str) -> str:
    """``code`` normalised, if a price can be in it (``ISO_4217``): what staff may price a
    product or a coupon in, so that every amount shown has its right number of decimals."""
    code = normalize_currency(code)
    if code not in ISO_4217:
        raise MoneyError(f"not an ISO 4217 currency with minor units: {code!r}")
    return code


def exponent(currency: str) -> int:
    """How many minor units digits ``currency`` has (USD 2, JPY 0, KWD 3)."""
    return _EXPONENTS.get(normalize_currency(currency), 2)


def round_half_even(value: Fraction | Decimal | int) -> int:
    """Round an exact quantity of minor units to an integer, ties to even."""
    if isinstance(value, int):
        return value
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def percent_of(amount: int, percent: Decimal | int | str) -> int:
    """``percent``% of ``amount`` minor units, rounded half-even (10% of 999 is 100)."""
    try:
        pct = Fraction(Decimal(str(percent)))
    except InvalidOperation as exc:
        raise MoneyError(f"not a percentage: {percent!r}") from exc
    return round_half_even(Fraction(amount) * pct / 100)


def allocate(amount: int, weights: list[int]) -> list[int]:
    """Split ``amount`` in proportion to ``weights`` so that the parts add up exactly.

    Used to spread an order-level discount over its lines; remainders go to the
    parts with the largest fractional share first (largest remainder method).
    """
    if not weights or any(w < 0 for w in weights):
        raise MoneyError("weights must be a non-empty list of non-negative integers")
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    exact = [Fraction(amount * w, total) for w in weights]
    parts = [int(x // 1) for x in exact]
    leftover = amount - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in order[:leftover]:
        parts[i] += 1
    return parts


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency; arithmetic refuses to mix currencies."""

    amount: int
    currency: str = DEFAULT_CURRENCY

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise MoneyError(f"amount must be an integer of minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def from_major(cls, value: str | Decimal | int, currency: str = DEFAULT_CURRENCY) -> Money:
        """``Money.from_major("99.99", "USD")`` is 9999 cents; more precision is refused."""
        try:
            dec = Decimal(str(value))
        except InvalidOperation as exc:
            raise MoneyError(f"not an amount: {value!r}") from exc
        scaled = dec.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise MoneyError(f"{value} has more precision than {currency} allows")
        return cls(int(scaled), currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int):
            raise MoneyError("money can only be multiplied by a whole quantity")
        return Money(self.amount * quantity, self.currency)

    __rmul__ = __mul__

    def to_major(self) -> Decimal:
        return Decimal(self.amount).scaleb(-exponent(self.currency))

    def format(self) -> str:
        """``"99.99 USD"``: plain, locale-free, for logs and emails."""
        places = exponent(self.currency)
        return f"{self.to_major():.{places}f} {self.currency}"
