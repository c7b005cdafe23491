"""validate-order's result: the workflow's copy of a priced order (``OrderSnapshot``),
built from the quote's lines, or on a repeat from the lines stored on the order.

It names the account (``user_id``), never the person: an activity's result is kept in the
workflow's history until the namespace's retention, where an erasure of the account does
not reach. Its ``email`` and ``name`` are empty (the fields stay: a worker of an earlier
release requires them); the order's emails read the address and name when they are
sent, under the account's hold (``services.email_recipients``)."""

from __future__ import annotations

from models.orders import LineSnapshot, Order, OrderSnapshot
from models.quotes import QuoteLine


def line_snapshot(line: QuoteLine) -> LineSnapshot:
    return LineSnapshot(
        product_id=line.product_id,
        name=line.name,
        quantity=line.quantity,
        unit_price=line.effective_unit_price,
        line_total=line.line_total,
    )


def order_snapshot(order: Order, lines: list[LineSnapshot]) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order.id,
        user_id=order.user_id,
        email="",
        name="",
        currency=order.currency,
        total=order.total,
        lines=lines,
        subtotal=order.subtotal,
        automatic_discounts=order.automatic_discounts,
        coupon_code=order.coupon_code,
        coupon_discount=order.coupon_discount,
        shipping=order.shipping,
        tax=order.tax,
    )
