"""Orders and payments only move forward, whatever order late answers arrive in."""

from __future__ import annotations

import pytest

from integrations.payments.gateway import IntentState, IntentStatus
from models.orders import Order, OrderStatus
from models.payments import Payment, PaymentStatus
from services.orders import OrderService
from services.payments import apply_state

S = OrderStatus


def _order(status: OrderStatus) -> Order:
    return Order(
        user_id="user_x",
        cart_id="cart_x",
        email="a@example.com",
        status=status,
        shipping_address={},
        payment_method_type="card",
        payment_token="pm_card_visa",
    )


@pytest.mark.parametrize(
    ("current", "to", "allowed"),
    [
        (S.PENDING, S.RESERVED, True),
        (S.RESERVED, S.REQUIRES_ACTION, True),
        (S.REQUIRES_ACTION, S.PAYMENT_AUTHORIZED, True),
        (S.CONFIRMED, S.FULFILLMENT_QUEUED, True),
        (S.CONFIRMED, S.CANCELLED, True),
        (S.RESERVED, S.FAILED, True),
        # a late answer never takes an order back
        (S.FULFILLMENT_QUEUED, S.PAYMENT_AUTHORIZED, False),
        (S.CONFIRMED, S.REQUIRES_ACTION, False),
        (S.PAYMENT_AUTHORIZED, S.PAYMENT_AUTHORIZED, False),
        # an undone order never reopens; a fulfilled one never fails
        (S.FAILED, S.CONFIRMED, False),
        (S.CANCELLED, S.FULFILLMENT_QUEUED, False),
        (S.FAILED, S.CANCELLED, False),
        (S.FULFILLMENT_QUEUED, S.FAILED, False),
    ],
)
def test_order_moves(current: OrderStatus, to: OrderStatus, allowed: bool) -> None:
    assert OrderService.can_move(_order(current), to) is allowed


def _payment(status: PaymentStatus, captured: int = 0, refunded: int = 0) -> Payment:
    return Payment(
        order_id="ord_x",
        provider="stripe",
        intent_id="pi_x",
        amount=5000,
        currency="USD",
        status=status,
        amount_captured=captured,
        amount_refunded=refunded,
    )


def _state(status: IntentStatus, captured: int = 0, refunded: int = 0) -> IntentState:
    return IntentState(
        intent_id="pi_x",
        status=status,
        amount=5000,
        currency="USD",
        amount_captured=captured,
        amount_refunded=refunded,
    )


def test_a_late_authorisation_answer_does_not_undo_a_capture() -> None:
    payment = _payment(PaymentStatus.CAPTURED, captured=5000)
    assert apply_state(payment, _state(IntentStatus.AUTHORIZED)) == 0
    assert (payment.status, payment.amount_captured) == (PaymentStatus.CAPTURED, 5000)


def test_refunds_count_once_and_decide_the_status() -> None:
    payment = _payment(PaymentStatus.CAPTURED, captured=5000)
    assert apply_state(payment, _state(IntentStatus.CAPTURED, 5000, 1000)) == 1000
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert apply_state(payment, _state(IntentStatus.CAPTURED, 5000, 1000)) == 0  # seen
    assert apply_state(payment, _state(IntentStatus.CAPTURED, 5000, 5000)) == 4000
    assert PaymentStatus(payment.status) is PaymentStatus.REFUNDED
    # a stale copy from before the refunds changes nothing
    assert apply_state(payment, _state(IntentStatus.CAPTURED, 5000, 0)) == 0
    assert (payment.status, payment.amount_refunded) == (PaymentStatus.REFUNDED, 5000)


def test_a_decline_after_3ds_is_recorded_but_not_over_an_authorisation() -> None:
    waiting = _payment(PaymentStatus.REQUIRES_ACTION)
    apply_state(waiting, _state(IntentStatus.REQUIRES_PAYMENT_METHOD))
    assert waiting.status == PaymentStatus.FAILED
    held = _payment(PaymentStatus.AUTHORIZED)
    apply_state(held, _state(IntentStatus.REQUIRES_ACTION))
    assert held.status == PaymentStatus.AUTHORIZED
    apply_state(held, _state(IntentStatus.CANCELED))
    assert PaymentStatus(held.status) is PaymentStatus.VOIDED


def test_cancelling_a_declined_intent_leaves_the_payment_failed() -> None:
    declined = _payment(PaymentStatus.FAILED)
    apply_state(declined, _state(IntentStatus.CANCELED))
    assert declined.status == PaymentStatus.FAILED
    held = _payment(PaymentStatus.AUTHORIZED)
    apply_state(held, _state(IntentStatus.CANCELED))
    assert held.status == PaymentStatus.VOIDED
    waiting = _payment(PaymentStatus.REQUIRES_ACTION)
    apply_state(waiting, _state(IntentStatus.CANCELED))
    assert waiting.status == PaymentStatus.VOIDED
