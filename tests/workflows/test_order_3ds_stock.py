"""3-D Secure answered after the stock's hold lapsed (it expired before the wait could
extend it: authorise retried past the reservation's TTL, or the sweep got there first),
on the time-skipping server with stand-ins: the stock is held again when the
authentication arrives, and the order goes on; only if the stock is gone does it fail
(out_of_stock), the payment's hold voided. Before, it went on to update-inventory, which
found the hold lapsed: the order failed after the customer authenticated."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
from tests.workflows.order_standins import (
    AUTHORISED,
    AUTHORIZE,
    CAPTURE,
    COMMIT,
    CONFIRM,
    ENDS_FAILED,
    EXTEND,
    HOLD_AGAIN,
    MUG,
    REFRESH,
    UNDO_PAYMENT,
    OrderStandIns,
    Succeed,
    ends_queued,
    requires_action,
    start_order,
    stock_gone,
    waiting_for_3ds,
)
from workflows.orders import OrderWorkflow
from workflows.types.orders import PaymentWebhook

WEBHOOK = PaymentWebhook(
    event_id="evt_late", type="payment_intent.amount_capturable_updated", intent_id="pi_standin"
)


async def test_3ds_answered_after_the_hold_lapsed_holds_the_stock_again(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order(
        {AUTHORIZE: [requires_action()], EXTEND: [Succeed(0)], HOLD_AGAIN: [Succeed(2)]}
    )
    handle = await start_order(time_skipping_env.client, order.order_id)
    await waiting_for_3ds(handle)
    await time_skipping_env.sleep(timedelta(minutes=14))  # the customer takes their time
    await handle.signal(OrderWorkflow.payment_webhook, WEBHOOK)
    view = await handle.result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    ends_queued(order.ran, [*AUTHORISED, EXTEND, REFRESH, HOLD_AGAIN, CONFIRM, COMMIT, CAPTURE])
    [again] = order.inputs(HOLD_AGAIN)
    assert (again["order_id"], again["ttl_seconds"]) == (order.order_id, 900.0)


async def test_3ds_answered_after_the_stock_went_fails_out_of_stock_and_voids_the_hold(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    gone = stock_gone(MUG, available=1)
    order = standins.order(
        {AUTHORIZE: [requires_action()], EXTEND: [Succeed(0)], HOLD_AGAIN: [gone]}
    )
    handle = await start_order(time_skipping_env.client, order.order_id)
    await waiting_for_3ds(handle)
    await handle.signal(OrderWorkflow.payment_webhook, WEBHOOK)
    view = await handle.result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "out_of_stock")
    assert order.ran == [*AUTHORISED, EXTEND, REFRESH, HOLD_AGAIN, *UNDO_PAYMENT, *ENDS_FAILED]
