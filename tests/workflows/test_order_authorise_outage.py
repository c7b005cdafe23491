"""process-payment while the payment provider cannot be reached, on the time-skipping
server with stand-ins: it is tried again, round after round, for the order's authorise
budget (the stock held meanwhile), so an outage shorter than the budget costs the order
nothing; a longer one fails it cleanly (``payment_unavailable``, the hold voided, the
stock released, nothing captured); the customer's cancel is heard during the wait.
Before (patch ``authorise-waits-out-outages``), three failed attempts failed the order:
about 8 s of a Stripe answering 5xx."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
from tests.workflows.order_standins import (
    AUTHORISED,
    AUTHORIZE,
    CAPTURE,
    CLOSE,
    COMMIT,
    CONFIRM,
    ENDS_CANCELLED,
    ENDS_PAYMENT_FAILED,
    UNDO_PAYMENT,
    Block,
    Fail,
    OrderStandIns,
    Step,
    Succeed,
    ends_queued,
    start_order,
)
from workflows.orders import OrderWorkflow
from workflows.types.orders import CancelRequest

# What PaymentActivities.authorize raises when Stripe answers 5xx or cannot be reached.
UNREACHABLE = Fail(
    "payment_unavailable", "stripe: the provider is unavailable", non_retryable=False
)
# A round is the step's three attempts (1 s and 2 s apart); rounds are 2, 4, 8… s apart.
ROUND = [UNREACHABLE] * 3


async def test_an_outage_shorter_than_the_budget_ends_with_the_order_confirmed(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    # Two whole rounds fail (at 0-3 s and 5-8 s), the third's first attempt (12 s) goes through.
    plan: list[Step] = [*ROUND, *ROUND, Succeed()]
    order = standins.order({AUTHORIZE: plan})
    handle = await start_order(
        time_skipping_env.client, order.order_id, authorize_timeout_seconds=60.0
    )
    view = await handle.result()
    assert (view.status, view.failure_code) == (OrderStatus.FULFILLMENT_QUEUED, None)
    tried = [AUTHORIZE] * 6
    ends_queued(order.ran, [*AUTHORISED, *tried, CONFIRM, COMMIT, CAPTURE])
    # Every round asks for the same order's payment (its idempotency keys are the order's).
    assert {i["order_id"] for i in order.inputs(AUTHORIZE)} == {order.order_id}


async def test_an_outage_longer_than_the_budget_fails_the_order_cleanly(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [UNREACHABLE]})
    handle = await start_order(
        time_skipping_env.client, order.order_id, authorize_timeout_seconds=20.0
    )
    view = await handle.result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_unavailable")
    # Rounds at 0-3 s, 5-8 s and 12-15 s; the next would start at 23 s, past the 20 s.
    attempts = order.ran.count(AUTHORIZE)
    assert attempts == 9, order.ran
    assert order.ran[2 + attempts :] == [*UNDO_PAYMENT, *ENDS_PAYMENT_FAILED]
    assert CAPTURE not in order.ran
    assert CONFIRM not in order.ran


async def test_a_declined_card_is_not_tried_again(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [Fail("payment_declined", "Your card was declined.")]})
    view = await (
        await start_order(time_skipping_env.client, order.order_id, authorize_timeout_seconds=60.0)
    ).result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_declined")
    assert order.ran.count(AUTHORIZE) == 1


async def test_the_customer_cancels_while_the_order_waits_for_the_provider(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    held = Block()  # the second round's first attempt: the provider hangs
    order = standins.order({AUTHORIZE: [*ROUND, held]})
    handle = await start_order(
        time_skipping_env.client, order.order_id, authorize_timeout_seconds=300.0
    )
    # The first round (0-3 s) and the pause after it (2 s): the server's clock skips
    # only while the test waits on it.
    await time_skipping_env.sleep(6)
    await asyncio.wait_for(held.started.wait(), 5)
    update = await handle.start_update(
        OrderWorkflow.cancel,
        CancelRequest(reason="changed my mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    # Heard at once: the attempt that hangs is cancelled, not waited for.
    view = await update.result()
    assert (view.status, view.failure_code) == (OrderStatus.CANCELLED, None)
    assert await handle.result() == view  # its email sent too
    await asyncio.wait_for(held.ended.wait(), 5)
    assert held.cancelled
    assert order.ran == [*AUTHORISED, *[AUTHORIZE] * 3, *UNDO_PAYMENT, *ENDS_CANCELLED]
    [close] = order.inputs(CLOSE)
    assert (close["status"], close["detail"]) == ("cancelled", "changed my mind")
