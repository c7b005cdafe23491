"""Every amount an email shows is read with its currency's ISO 4217 exponent: 1234 minor
units are 12.34 USD, 1234 JPY (no minor unit) and 1.234 KWD (three decimals). The
templates divided by 100 whatever the currency: 12.34 JPY, 12.34 KWD."""

from __future__ import annotations

import re
from typing import Any

import pytest

from integrations.email.templates import TEMPLATE_DIR, EmailTemplates

AMOUNT = 1234
SHOWN = {"USD": "12.34 USD", "JPY": "1234 JPY", "KWD": "1.234 KWD", "CLF": "0.1234 CLF"}
# Every template that shows money, with the amounts (all AMOUNT) it is rendered with.
CONTEXTS: dict[str, dict[str, Any]] = {
    "order_confirmation": {
        "name": "Ann",
        "lines": [{"quantity": 1, "name": "Tea", "line_total": AMOUNT}],
        "subtotal": AMOUNT * 2,
        "automatic_discounts": AMOUNT,
        "coupon_discount": AMOUNT,
        "coupon_code": "TEN",
        "shipping": AMOUNT,
        "tax": AMOUNT,
        "total": AMOUNT,
    },
    "order_cancelled": {"name": "Ann", "reason": "", "total": AMOUNT, "unrefunded": AMOUNT},
    "payment_failed": {
        "name": "Ann",
        "total": AMOUNT,
        "what_failed": "the card was declined",
        "how_to_retry": "use another card",
        "cart_open": True,
        "cart_url": "http://shop/cart",
        "order_url": "http://shop/order",
    },
    "refund_issued": {
        "name": "Ann",
        "amount": AMOUNT,
        "reason": "",
        "captured": AMOUNT,
        "refunded_total": AMOUNT,
        "remaining": AMOUNT,
        "order_url": "http://shop/order",
    },
    "refund_failed": {
        "name": "Ann",
        "amount": AMOUNT,
        "why": "your bank sent it back to us",
        "return_id": None,
        "order_url": "http://shop/order",
    },
    "refund_failed_staff": {
        "refund_id": "re_1",
        "amount": AMOUNT,
        "reason": "expired_or_canceled_card",
        "return_id": None,
        "action_url": "http://shop/admin",
    },
    "return_received": {
        "name": "Ann",
        "return_id": "ret_1",
        "lines": [{"name": "Tea", "received": 1, "damaged": 0}],
        "refund_amount": AMOUNT,
        "no_refund_because": "",
    },
    "return_refunded": {
        "name": "Ann",
        "return_id": "ret_1",
        "amount": AMOUNT,
        "order_url": "http://shop/order",
    },
}
# A figure followed by a currency code: each must be one of the amounts rendered.
AMOUNT_SHOWN = re.compile(r"([0-9][0-9.]*) ([A-Z]{3})\b")


def test_every_template_that_shows_money_is_checked() -> None:
    """A new template with an amount in it is added to CONTEXTS (and so checked)."""
    with_money = {p.name.split(".")[0] for p in TEMPLATE_DIR.iterdir() if "money(" in p.read_text()}
    assert with_money == set(CONTEXTS)


@pytest.mark.parametrize("currency", sorted(SHOWN))
@pytest.mark.parametrize("template", sorted(CONTEXTS))
def test_amounts_use_the_currency_exponent(template: str, currency: str) -> None:
    context = CONTEXTS[template] | {"order_id": "ord_1", "currency": currency}
    rendered = EmailTemplates().render(template, context)
    for part in (rendered.subject, rendered.text, rendered.html):
        shown = {f"{n} {c}" for n, c in AMOUNT_SHOWN.findall(part)}
        # The (subtotal - automatic discounts) line is AMOUNT as well.
        assert shown <= {SHOWN[currency]}, part
    assert SHOWN[currency] in rendered.text
    assert SHOWN[currency] in rendered.html
