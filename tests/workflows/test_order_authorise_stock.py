"""An authorise that succeeded after the stock's hold lapsed (Stripe down longer than
the reservation's TTL, authorise retried meanwhile), on the time-skipping server with
stand-ins: the stock is held again, and the order goes on; only if the stock is gone
does it fail (out_of_stock), the payment's hold voided. Before, it went on to
update-inventory, which found the hold lapsed: the order failed, the card authorised.
An authorise that ends before half the TTL has passed takes no extra step."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
from tests.workflows.order_standins import (
    AUTHORISED,
    AUTHORIZE,
    CAPTURE,
    COMMIT,
    CONFIRM,
    ENDS_FAILED,
    HOLD_AGAIN,
    MUG,
    UNDO_PAYMENT,
    OrderStandIns,
    Succeed,
    ends_queued,
    flaky,
    start_order,
    stock_gone,
)

# Two transient failures: retried after 1 s and 2 s (skipped), 3 s after the hold.
SLOW_AUTHORISE = flaky(2)
RETRIED = [AUTHORIZE, AUTHORIZE]


async def test_an_authorise_past_the_hold_s_ttl_holds_the_stock_again(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: SLOW_AUTHORISE, HOLD_AGAIN: [Succeed(2)]})
    handle = await start_order(
        time_skipping_env.client, order.order_id, reservation_ttl_seconds=4.0
    )
    view = await handle.result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    ends_queued(order.ran, [*AUTHORISED, *RETRIED, HOLD_AGAIN, CONFIRM, COMMIT, CAPTURE])
    [again] = order.inputs(HOLD_AGAIN)
    assert (again["order_id"], again["ttl_seconds"]) == (order.order_id, 4.0)


async def test_an_authorise_past_the_ttl_with_the_stock_gone_fails_out_of_stock_and_voids(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    gone = stock_gone(MUG, available=1)
    order = standins.order({AUTHORIZE: SLOW_AUTHORISE, HOLD_AGAIN: [gone]})
    handle = await start_order(
        time_skipping_env.client, order.order_id, reservation_ttl_seconds=4.0
    )
    view = await handle.result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "out_of_stock")
    assert order.ran == [*AUTHORISED, *RETRIED, HOLD_AGAIN, *UNDO_PAYMENT, *ENDS_FAILED]


async def test_an_authorise_well_within_the_ttl_does_not_hold_again(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: SLOW_AUTHORISE})  # 3 s of the default 900
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    ends_queued(order.ran, [*AUTHORISED, *RETRIED, CONFIRM, COMMIT, CAPTURE])
