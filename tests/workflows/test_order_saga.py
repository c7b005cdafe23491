"""``OrderWorkflow`` branch by branch, on the time-skipping server with stand-in
activities: the happy path, a failure at each step with the exact compensations it
runs, retries of steps and of compensations. Each test takes a fraction of a second;
``tests/orders`` proves the same saga against the real activities and the live stack.
"""

from __future__ import annotations

from uuid import uuid4

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.orders import PAYMENT_FAILURES, OrderStatus
from temporal.search_attributes import CUSTOMER_ID, ORDER_STATUS, ORDER_TOTAL
from tests.workflows.order_standins import (
    AUTHORISED,
    AUTHORIZE,
    CAPTURE,
    CLOSE,
    COMMIT,
    CONFIRM,
    CONFIRMATION,
    ENDS_FAILED,
    ENDS_PAYMENT_FAILED,
    FORWARD,
    FULFIL,
    RELEASE,
    RESERVE,
    TEA,
    TOTAL,
    UNDO_CONFIRM,
    UNDO_ORDER,
    UNDO_PAYMENT,
    USER,
    VALIDATE,
    VOID,
    Fail,
    OrderStandIns,
    Succeed,
    authorization,
    ends_queued,
    flaky,
    free_snapshot,
    snapshot,
    start_order,
)
from workflows.orders import OrderWorkflow
from workflows.types.orders import OrderView


async def test_an_order_runs_every_step_and_is_queued_for_fulfilment(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order()
    handle = await start_order(time_skipping_env.client, order.order_id)
    view = await handle.result()
    assert view == OrderView(
        order_id=order.order_id, status=OrderStatus.FULFILLMENT_QUEUED, total=TOTAL
    )
    ends_queued(order.ran)
    assert await handle.query(OrderWorkflow.status) == view
    [email] = order.inputs("email.send")
    assert (email["to"], email["idempotency_key"]) == (
        "ada@example.com",
        f"order_confirmation:{order.order_id}",
    )
    assert order.inputs(RESERVE) == [{"order_id": order.order_id, "ttl_seconds": 900.0}]
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(ORDER_STATUS) == "fulfillment_queued"
    assert attributes.get(CUSTOMER_ID) == USER
    assert attributes.get(ORDER_TOTAL) == TOTAL


async def test_database_steps_are_local_and_the_server_hears_of_operator_statuses_only(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order()
    handle = await start_order(time_skipping_env.client, order.order_id)
    await handle.result()
    history = await handle.fetch_history()
    remote = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    local = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    statuses = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields[
            ORDER_STATUS.name
        ].data
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and ORDER_STATUS.name
        in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert sorted(remote) == ["email.send", "payments.authorize", "payments.capture"]
    assert len(local) == 5  # validate, reserve, confirm, commit, queue-fulfillment
    assert statuses == [b'"pending"', b'"confirmed"', b'"fulfillment_queued"']


async def test_an_invalid_cart_fails_before_anything_is_held_and_nobody_is_written_to(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({VALIDATE: [Fail("cart_empty", "the cart is empty")]})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "cart_empty")
    assert order.ran == [VALIDATE, CLOSE]
    [close] = order.inputs(CLOSE)
    assert (close["status"], close["failure_code"]) == ("failed", "cart_empty")
    assert close["detail"] == "validate-order: the cart is empty"


SHORT = {"productId": TEA.product_id, "requested": 1, "available": 0}


@pytest.mark.parametrize(
    ("step", "error", "ran"),
    [
        pytest.param(
            RESERVE,
            Fail("out_of_stock", details={"unavailableItems": [SHORT]}),
            [VALIDATE, RESERVE, RELEASE, *ENDS_FAILED],
            id="reserve",
        ),
        pytest.param(
            AUTHORIZE,
            Fail("payment_declined", details={"reason": "card_declined"}),
            [*AUTHORISED, *UNDO_PAYMENT, *ENDS_PAYMENT_FAILED],
            id="authorise",
        ),
        pytest.param(
            CONFIRM,
            Fail("cart_not_active"),
            [*AUTHORISED, CONFIRM, *UNDO_ORDER, *ENDS_FAILED],
            id="create-order",
        ),
        pytest.param(
            COMMIT,
            Fail("reservation_lapsed"),
            [*AUTHORISED, CONFIRM, COMMIT, *UNDO_ORDER, *ENDS_FAILED],
            id="commit",
        ),
        pytest.param(
            CAPTURE,
            Fail("payment_missing"),
            [*FORWARD, *UNDO_ORDER, *ENDS_FAILED],
            id="capture",
        ),
    ],
)
async def test_a_business_failure_undoes_the_steps_before_it_in_reverse(
    time_skipping_env: WorkflowEnvironment,
    standins: OrderStandIns,
    step: str,
    error: Fail,
    ran: list[str],
) -> None:
    order = standins.order({step: [error]})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert view == OrderView(
        order_id=order.order_id, status=OrderStatus.FAILED, failure_code=error.type, total=TOTAL
    )
    assert order.ran == ran
    [close] = order.inputs(CLOSE)
    assert (close["status"], close["failure_code"]) == ("failed", error.type)
    assert close["data"] == dict(error.details or {})  # e.g. the unavailable items
    if error.type in PAYMENT_FAILURES:
        assert order.inputs("email.send") == []  # the payment.failed subscriber writes
    else:
        [email] = order.inputs("email.send")
        assert email["context"]["reason"] == close["detail"]


async def test_a_step_that_keeps_failing_is_retried_three_times_then_fails_the_order(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    # What an exception an activity does not translate (here a dropped connection) looks like.
    dropped = Fail("ConnectionResetError", "connection reset by peer", non_retryable=False)
    order = standins.order({CONFIRM: [dropped]})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    # The step's name, not the internal error, is what the order shows.
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "create_order_failed")
    assert order.ran == [*AUTHORISED, CONFIRM, CONFIRM, CONFIRM, *UNDO_ORDER, *ENDS_FAILED]
    [close] = order.inputs(CLOSE)
    assert close["detail"] == "create-order: could not complete; it was retried"


async def test_a_bug_in_a_step_fails_the_order_without_showing_internals(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [Fail("KeyError", "'intent_id'")]})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "process_payment_failed")
    assert order.ran == [*AUTHORISED, *UNDO_PAYMENT, *ENDS_FAILED]
    assert "intent_id" not in str(order.inputs(CLOSE))


async def test_an_authorisation_that_is_neither_held_nor_waiting_is_a_decline(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [authorization("requires_payment_method")]})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_declined")
    assert order.ran == [*AUTHORISED, *UNDO_PAYMENT, *ENDS_PAYMENT_FAILED]


async def test_a_step_that_fails_transiently_goes_through_on_a_later_attempt(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({RESERVE: flaky(2)})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    ends_queued(order.ran, [VALIDATE, RESERVE, RESERVE, RESERVE, *FORWARD[2:]])


async def test_past_the_point_of_no_return_fulfilment_is_retried_until_it_succeeds(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({FULFIL: flaky(5)})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    assert order.ran[: len(FORWARD)] == FORWARD
    assert sorted(order.ran[len(FORWARD) :]) == [CONFIRMATION] + [FULFIL] * 6  # not 3


async def test_a_compensation_that_fails_is_retried_until_it_succeeds(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order(
        {AUTHORIZE: [Fail("payment_declined")], VOID: flaky(4, "stripe_unavailable")}
    )
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_declined")
    # More attempts than a forward step gets; the next compensation waits for it.
    assert order.ran == [
        *AUTHORISED,
        VOID,
        VOID,
        VOID,
        VOID,
        *UNDO_PAYMENT,
        *ENDS_PAYMENT_FAILED,
    ]


async def test_a_lost_email_never_undoes_an_order(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({"email.send": [Fail("email_rejected")]})
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    ends_queued(order.ran)


async def test_a_free_order_is_confirmed_and_queued_without_a_payment_step(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """A total of 0 (a 100 % coupon, free shipping): Stripe refuses a PaymentIntent of 0,
    so nothing is authorised or captured; the rest of the pipeline runs as for any order."""
    order = standins.script(f"ord_free_{uuid4().hex[:8]}")
    order.plan[VALIDATE] = [Succeed(free_snapshot(order.order_id))]
    handle = await start_order(time_skipping_env.client, order.order_id)
    view = await handle.result()
    assert view == OrderView(order_id=order.order_id, status=OrderStatus.FULFILLMENT_QUEUED)
    ends_queued(order.ran, [VALIDATE, RESERVE, CONFIRM, COMMIT])
    [email] = order.inputs("email.send")
    assert (email["template"], email["context"]["total"]) == ("order_confirmation", 0)
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(ORDER_TOTAL) == 0


async def test_a_free_order_undone_gives_back_stock_and_coupon_and_voids_nothing(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.script(f"ord_free_{uuid4().hex[:8]}")
    order.plan[VALIDATE] = [Succeed(free_snapshot(order.order_id))]
    order.plan[COMMIT] = [Fail("reservation_lapsed")]
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "reservation_lapsed")
    assert order.ran == [VALIDATE, RESERVE, CONFIRM, COMMIT, UNDO_CONFIRM, RELEASE, *ENDS_FAILED]
    [email] = order.inputs("email.send")
    assert (email["template"], email["context"]["total"]) == ("order_failed", 0)


async def _ui_labels(handle: WorkflowHandle[OrderWorkflow, OrderView]) -> tuple[list[str], str]:
    """What the Temporal UI shows of a closed order: its activities' summaries and its
    current details."""
    history = await handle.fetch_history()
    summaries = [
        pydantic_data_converter.payload_converter.from_payload(e.user_metadata.summary, str)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return summaries, str(metadata.current_details)


@pytest.mark.parametrize(
    ("currency", "shown"), [("USD", "33.99 USD"), ("JPY", "3399 JPY"), ("KWD", "3.399 KWD")]
)
async def test_the_temporal_ui_shows_the_total_as_a_shopper_reads_it(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns, currency: str, shown: str
) -> None:
    """The payment step's summary and the order's current details carry the total as
    ``Money.format`` writes it (the currency's own decimals), not in minor units (3399)."""
    order = standins.script(f"ord_ui_{uuid4().hex[:8]}")
    priced = snapshot(order.order_id).model_copy(update={"currency": currency})
    order.plan[VALIDATE] = [Succeed(priced)]
    handle = await start_order(time_skipping_env.client, order.order_id)
    await handle.result()
    summaries, details = await _ui_labels(handle)
    assert f"process-payment: authorise {shown} (manual capture)" in summaries, summaries
    assert details == f"fulfillment_queued; total {shown}"
