"""``OrderWorkflow``'s messages on the time-skipping server with stand-in activities:
the ``cancel`` update at each step (and after the point of no return), a cancel from
Temporal itself, 3-D Secure ended by the ``payment_webhook`` signal or by the deadline,
the ``status`` query along the way, and each message coming with the start (in the first
workflow task, where its handler runs before ``run``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
from temporal.clients.connection import TemporalConnection, WorkflowRefused
from temporal.clients.orders import OrderWorkflows, workflow_id
from temporal.clients.starts import WorkflowStarts
from temporal.queues import TaskQueue
from tests.workflows.order_standins import (
    AUTHORISED,
    AUTHORIZE,
    CANCELLED_EMAIL,
    CAPTURE,
    CLOSE,
    COMMIT,
    CONFIRM,
    CONFIRMATION,
    ENDS_CANCELLED,
    ENDS_PAYMENT_FAILED,
    EXTEND,
    FORWARD,
    FULFIL,
    HOLD_AGAIN,
    REFRESH,
    RESERVE,
    THREE_DS_URL,
    TOTAL,
    UNDO_ORDER,
    UNDO_PAYMENT,
    USER,
    VALIDATE,
    VOID,
    Block,
    Fail,
    OrderStandIns,
    authorization,
    ends_queued,
    requires_action,
    start_order,
    until_event,
    waiting_for_3ds,
)
from workflows.orders import OrderWorkflow
from workflows.types.orders import (
    PAYMENT_WEBHOOK_SIGNAL,
    CancelRequest,
    OrderInput,
    OrderView,
    PaymentWebhook,
)

# The stock is held again (if the hold lapsed meanwhile), then the sale.
AFTER_3DS = [HOLD_AGAIN, CONFIRM, COMMIT, CAPTURE]
ACTION_TIMEOUT = timedelta(minutes=15)


def _webhook(
    event_id: str, type: str = "payment_intent.amount_capturable_updated"
) -> PaymentWebhook:
    return PaymentWebhook(event_id=event_id, type=type, intent_id="pi_standin")


@pytest.mark.parametrize(
    ("step", "status", "ran"),
    [
        pytest.param(
            AUTHORIZE,
            OrderStatus.RESERVED,
            [*AUTHORISED, *UNDO_PAYMENT, *ENDS_CANCELLED],
            id="authorise",
        ),
        pytest.param(
            CAPTURE,
            OrderStatus.CONFIRMED,
            [*FORWARD, *UNDO_ORDER, *ENDS_CANCELLED],
            id="capture",
        ),
    ],
)
async def test_a_cancel_during_a_step_undoes_that_step_and_every_one_before_it(
    time_skipping_env: WorkflowEnvironment,
    standins: OrderStandIns,
    step: str,
    status: OrderStatus,
    ran: list[str],
) -> None:
    block = Block()
    order = standins.order({step: [block]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(block.started.wait(), 5)
    assert (await handle.query(OrderWorkflow.status)).status == status
    update = await handle.start_update(
        OrderWorkflow.cancel,
        CancelRequest(reason="changed my mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    block.release()  # the step finishes; the workflow then sees the cancel
    view = await update.result()
    assert (view.status, view.failure_code) == (OrderStatus.CANCELLED, None)
    assert await handle.result() == view
    assert order.ran == ran
    [close] = order.inputs(CLOSE)
    assert (close["status"], close["detail"]) == ("cancelled", "changed my mind")


@pytest.mark.parametrize(
    ("step", "taken_at", "ran"),
    [
        pytest.param(
            VALIDATE, AUTHORIZE, [*AUTHORISED, *UNDO_PAYMENT, *ENDS_CANCELLED], id="validate"
        ),
        pytest.param(
            RESERVE, AUTHORIZE, [*AUTHORISED, *UNDO_PAYMENT, *ENDS_CANCELLED], id="reserve"
        ),
        pytest.param(CONFIRM, CAPTURE, [*FORWARD, *UNDO_ORDER, *ENDS_CANCELLED], id="create-order"),
        pytest.param(COMMIT, CAPTURE, [*FORWARD, *UNDO_ORDER, *ENDS_CANCELLED], id="commit"),
    ],
)
async def test_a_cancel_during_a_local_database_step_is_taken_at_the_next_remote_step(
    time_skipping_env: WorkflowEnvironment,
    standins: OrderStandIns,
    step: str,
    taken_at: str,
    ran: list[str],
) -> None:
    """The database steps are local activities: one holds the workflow task, so a cancel
    sent meanwhile is accepted once the workflow next waits on the server (the next
    remote step) and undoes everything done by then."""
    block, remote = Block(), Block()
    order = standins.order({step: [block], taken_at: [remote]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(block.started.wait(), 5)
    accepting = asyncio.create_task(
        handle.start_update(
            OrderWorkflow.cancel,
            CancelRequest(reason="changed my mind"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
    )
    block.release()
    await asyncio.wait_for(remote.started.wait(), 5)
    update = await asyncio.wait_for(accepting, 5)
    remote.release()
    view = await update.result()
    assert (view.status, view.failure_code) == (OrderStatus.CANCELLED, None)
    assert await handle.result() == view
    assert order.ran == ran
    [close] = order.inputs(CLOSE)
    assert (close["status"], close["detail"]) == ("cancelled", "changed my mind")


async def test_asking_twice_cancels_once(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    block = Block()
    order = standins.order({CAPTURE: [block]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(block.started.wait(), 5)
    updates = [
        await handle.start_update(
            OrderWorkflow.cancel,
            CancelRequest(reason=reason),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        for reason in ("first", "second")
    ]
    block.release()
    views = [await u.result() for u in updates]
    assert [v.status for v in views] == [OrderStatus.CANCELLED] * 2
    await handle.result()  # the updates answer once the order is closed, before the email
    assert order.ran.count(CLOSE) == order.ran.count(CANCELLED_EMAIL) == 1
    assert order.inputs(CLOSE)[0]["detail"] == "first"


async def test_once_fulfilment_has_started_a_cancel_is_refused(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    block = Block()  # the confirmation email (queue-fulfillment is a local step)
    order = standins.order({"email.send": [block]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(block.started.wait(), 5)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="too late"))
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "order_not_cancellable"
    block.release()
    assert (await handle.result()).status == OrderStatus.FULFILLMENT_QUEUED
    ends_queued(order.ran, FORWARD)  # nothing was undone


async def test_the_order_client_answers_a_refused_cancel_as_refused(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """``OrderWorkflows.cancel`` (the API's way in) raises ``WorkflowRefused`` with the
    validator's code. Its start waits for the Update to be accepted, and a refused one
    comes back decided, its refusal raised by the result: that escaped as the SDK's
    ``WorkflowUpdateFailedError`` (a 500 for the customer)."""
    block = Block()  # the confirmation email: the workflow runs past its point of no return
    order = standins.order({"email.send": [block]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(block.started.wait(), 5)
    connection = TemporalConnection.of(time_skipping_env.client)
    # Sessions for a start still owed: this workflow runs, none is asked for.
    sessions = async_sessionmaker(class_=AsyncSession)
    orders = OrderWorkflows(connection, WorkflowStarts(connection, sessions))
    with pytest.raises(WorkflowRefused) as refused:
        await orders.cancel(order.order_id, CancelRequest(reason="too late"))
    assert refused.value.code == "order_not_cancellable"
    block.release()
    assert (await handle.result()).status == OrderStatus.FULFILLMENT_QUEUED


async def test_a_cancel_from_temporal_undoes_the_order_too(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    block, undo = Block(), Block()
    order = standins.order({AUTHORIZE: [block], VOID: [undo]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(block.started.wait(), 5)
    await handle.cancel()  # as from the Temporal UI or CLI
    await asyncio.wait_for(undo.started.wait(), 5)  # undoing starts at once
    # The authorisation in flight was told to stop (it heard so through its heartbeat)
    # and its worker said it did. (Ended only by the order, it would hold the test
    # server's clock until its own timeout.)
    await asyncio.wait_for(block.ended.wait(), 5)
    assert block.cancelled
    await until_event(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED)
    undo.release()
    view = await handle.result()
    assert view.status == OrderStatus.CANCELLED
    assert order.ran == [*AUTHORISED, *UNDO_PAYMENT, *ENDS_CANCELLED]
    assert order.inputs(CLOSE)[0]["detail"] == "cancelled by an operator"


async def test_3ds_completed_by_the_customer_goes_through(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [requires_action()]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await waiting_for_3ds(handle)
    assert await handle.query(OrderWorkflow.status) == OrderView(
        order_id=order.order_id,
        status=OrderStatus.REQUIRES_ACTION,
        next_action_url=THREE_DS_URL,
        total=TOTAL,
    )
    await handle.signal(OrderWorkflow.payment_webhook, _webhook("evt_1"))
    view = await handle.result()
    assert (view.status, view.next_action_url) == (OrderStatus.FULFILLMENT_QUEUED, None)
    assert order.ran[:9] == [VALIDATE, RESERVE, AUTHORIZE, EXTEND, REFRESH, *AFTER_3DS]
    assert sorted(order.ran[9:]) == [CONFIRMATION, FULFIL]


async def test_3ds_failed_by_the_customer_declines_the_order(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    failed = authorization("requires_payment_method", failure_code="authentication_failed")
    order = standins.order({AUTHORIZE: [requires_action()], REFRESH: [failed]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await waiting_for_3ds(handle)
    await handle.signal(
        OrderWorkflow.payment_webhook, _webhook("evt_1", "payment_intent.payment_failed")
    )
    view = await handle.result()
    assert (view.status, view.failure_code, view.next_action_url) == (
        OrderStatus.FAILED,
        "payment_declined",
        None,
    )
    assert order.ran == [*AUTHORISED, EXTEND, REFRESH, *UNDO_PAYMENT, *ENDS_PAYMENT_FAILED]
    assert "authentication_failed" in order.inputs(CLOSE)[0]["detail"]


async def test_3ds_nobody_completes_times_out_at_the_deadline(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [requires_action()], REFRESH: [requires_action()]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    view = await handle.result()  # the server skips the 15 minutes
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_action_timeout")
    assert order.ran == [*AUTHORISED, EXTEND, REFRESH, *UNDO_PAYMENT, *ENDS_PAYMENT_FAILED]
    described = await handle.describe()
    assert described.close_time is not None
    assert described.close_time - described.start_time >= ACTION_TIMEOUT
    # Stock is held past the deadline for as long as a reservation normally lives.
    [extend] = order.inputs(EXTEND)
    assert extend["until"]


async def test_3ds_finished_without_a_webhook_is_found_at_the_deadline(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [requires_action()]})  # refresh: authorised
    view = await (await start_order(time_skipping_env.client, order.order_id)).result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    assert order.ran[:9] == [VALIDATE, RESERVE, AUTHORIZE, EXTEND, REFRESH, *AFTER_3DS]


async def test_webhooks_that_settle_nothing_leave_the_order_waiting(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [requires_action()], REFRESH: [requires_action()]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await waiting_for_3ds(handle)
    # A decisive webhook makes the workflow ask the provider: still waiting.
    await handle.signal(OrderWorkflow.payment_webhook, _webhook("evt_1"))
    await order.called(REFRESH)
    await waiting_for_3ds(handle, timers=2)
    # The same event again, and one that decides nothing, do not wake it.
    await handle.signal(OrderWorkflow.payment_webhook, _webhook("evt_1"))
    await handle.signal(OrderWorkflow.payment_webhook, _webhook("evt_2", "payment_intent.created"))
    view = await handle.result()
    assert view.failure_code == "payment_action_timeout"
    assert order.ran.count(REFRESH) == 2  # the first webhook's and the deadline's


async def test_a_cancel_while_3ds_waits_voids_and_releases(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    order = standins.order({AUTHORIZE: [requires_action()], REFRESH: [requires_action()]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await waiting_for_3ds(handle)
    view = await handle.execute_update(
        OrderWorkflow.cancel, CancelRequest(reason="changed my mind")
    )
    assert (view.status, view.next_action_url) == (OrderStatus.CANCELLED, None)
    assert await handle.result() == view
    assert order.ran == [*AUTHORISED, EXTEND, *UNDO_PAYMENT, *ENDS_CANCELLED]


def _with_start(order_id: str) -> WithStartWorkflowOperation[OrderWorkflow, OrderView]:
    return WithStartWorkflowOperation(
        OrderWorkflow.run,
        OrderInput(order_id=order_id, user_id=USER),
        id=workflow_id(order_id),
        task_queue=str(TaskQueue.ORDERS),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )


async def _cancelled_with_the_start(
    env: WorkflowEnvironment, order_id: str
) -> tuple[OrderView, WorkflowHandle[OrderWorkflow, OrderView]]:
    """The order's workflow started with a cancel in its first workflow task
    (update-with-start): the Update's answer, and the workflow's handle."""
    start = _with_start(order_id)
    view = await asyncio.wait_for(
        env.client.execute_update_with_start_workflow(
            OrderWorkflow.cancel,
            CancelRequest(reason="changed my mind"),
            start_workflow_operation=start,
        ),
        timeout=30,
    )
    return view, await start.workflow_handle()


async def test_a_cancel_that_comes_with_the_start_cancels_before_anything_is_held(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """The cancel's validator and handler run before ``run`` (the order still pending):
    it is accepted, and the order is undone at the first check, after validate-order,
    holding nothing yet; the Update answers once the order is closed."""
    order = standins.order()
    view, handle = await _cancelled_with_the_start(time_skipping_env, order.order_id)
    assert (view.order_id, view.status, view.failure_code) == (
        order.order_id,
        OrderStatus.CANCELLED,
        None,
    )
    assert (await handle.result()).status == OrderStatus.CANCELLED
    assert order.ran == [VALIDATE, *ENDS_CANCELLED]
    [close] = order.inputs(CLOSE)
    assert (close["status"], close["detail"]) == ("cancelled", "changed my mind")


async def test_a_cancel_accepted_before_the_order_fails_answers_with_the_failure(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """A cancel taken with the start, then validate-order fails: the order ends failed,
    its workflow returning in the activation that closes it (no email: nothing known
    to write to). The waiting Update still answers, with the failure, rather than the
    caller getting AcceptedUpdateCompletedWorkflow."""
    order = standins.order({VALIDATE: [Fail("cart_empty", "the cart is empty")]})
    view, handle = await _cancelled_with_the_start(time_skipping_env, order.order_id)
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "cart_empty")
    assert await handle.result() == view
    assert order.ran == [VALIDATE, CLOSE]


async def test_a_webhook_that_comes_with_the_start_is_taken_when_3ds_begins(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """A decisive webhook delivered with the start (signal-with-start; the handler runs
    before ``run``) is kept: once the workflow waits for the customer it asks the
    provider at once (authorised) instead of sleeping to the 3-D Secure deadline."""
    order = standins.order({AUTHORIZE: [requires_action()]})  # refresh: authorised
    handle = await time_skipping_env.client.start_workflow(
        OrderWorkflow.run,
        OrderInput(order_id=order.order_id, user_id=USER),
        id=workflow_id(order.order_id),
        task_queue=str(TaskQueue.ORDERS),
        start_signal=PAYMENT_WEBHOOK_SIGNAL,
        start_signal_args=[_webhook("evt_early")],
    )
    view = await handle.result()
    assert view.status == OrderStatus.FULFILLMENT_QUEUED
    assert order.ran[:9] == [VALIDATE, RESERVE, AUTHORIZE, EXTEND, REFRESH, *AFTER_3DS]
    described = await handle.describe()
    assert described.close_time is not None
    assert described.close_time - described.start_time < ACTION_TIMEOUT


async def test_a_cancel_after_undoing_began_is_refused(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """The payment is declined and the compensations run: a cancel sent meanwhile is
    refused (the order is already being undone, as failed), not left waiting."""
    undo = Block()
    order = standins.order({AUTHORIZE: [authorization("requires_payment_method")], VOID: [undo]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(undo.started.wait(), 5)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        # Accepted, it would wait for the compensation held here: bounded, not hung.
        await asyncio.wait_for(
            handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="too late")), 10
        )
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "order_not_cancellable"
    undo.release()
    view = await handle.result()
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_declined")
    assert order.ran == [*AUTHORISED, *UNDO_PAYMENT, *ENDS_PAYMENT_FAILED]


async def test_a_cancel_from_temporal_while_undoing_lets_the_undo_finish(
    time_skipping_env: WorkflowEnvironment, standins: OrderStandIns
) -> None:
    """The payment is declined and its void runs when an operator cancels the workflow
    (the UI, the CLI): the undo still ends (stock back, the order closed failed), and the
    workflow with it. Taken at the void, the cancel ended the workflow there: the hold
    never released, the stock held until its reservation lapsed, the order left open."""
    undo = Block()
    order = standins.order({AUTHORIZE: [authorization("requires_payment_method")], VOID: [undo]})
    handle = await start_order(time_skipping_env.client, order.order_id)
    await asyncio.wait_for(undo.started.wait(), 5)
    await handle.cancel()  # as from the Temporal UI or CLI
    await until_event(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    undo.release()
    view = await asyncio.wait_for(handle.result(), 10)
    assert (view.status, view.failure_code) == (OrderStatus.FAILED, "payment_declined")
    assert order.ran == [*AUTHORISED, *UNDO_PAYMENT, *ENDS_PAYMENT_FAILED]
    assert not undo.cancelled
