"""``FulfillmentWorkflow`` branch by branch on the time-skipping server, with stand-in
activities and a stand-in ``ShipmentWorkflow`` child that relays carrier statuses:
parcels to delivered, validators and the activity's authority, hold and release, a
cancel before any label (the order's compensations), a cancel after one (refused), and
a carrier exception putting the fulfilment on hold."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from models.fulfillment import FulfillmentStatus, ShipmentStatus
from temporal.queues import TaskQueue
from temporal.search_attributes import CUSTOMER_ID, FULFILLMENT_STATUS, ORDER_ID, SHIPMENT_STATUS
from tests.workflows.fulfillment_standins import (
    CANCEL,
    CLOSE,
    CREATE,
    HOLD,
    LINES,
    MUGS,
    OPEN,
    REFUND,
    RELEASE,
    TEA,
    UNDO,
    FulfillmentStandIns,
    Fulfilment,
    carrier,
    eventually,
    start_fulfilment,
)
from tests.workflows.order_standins import Block, until_event
from workflows.fulfillment import FulfillmentWorkflow
from workflows.types.fulfillment import fulfillment_workflow_id, shipment_workflow_id
from workflows.types.fulfillment_orders import (
    CANCEL_FULFILLMENT_UPDATE,
    CREATE_SHIPMENT_UPDATE,
    HOLD_UPDATE,
    RELEASE_UPDATE,
    CancelFulfillmentRequest,
    FulfillmentInput,
    FulfillmentView,
    HoldRequest,
    LineQuantity,
    ShipmentCreated,
    ShipmentRequest,
    ShipmentState,
)


@pytest.fixture(scope="module")
async def fulfilments(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[FulfillmentStandIns]:
    async with FulfillmentStandIns().running(time_skipping_env.client) as running:
        yield running


@pytest.fixture(autouse=True)
async def _leaves_nothing_running(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> AsyncIterator[None]:
    """Ends the fulfilments a test leaves open (on hold, parcels in transit), and their
    parcels with them. Left running, they shared the module's test server with the next
    tests: whenever a later test awaited a result the server skipped its clock to their
    ten-year default execution timeout, and a later test's update hung (seen under CPU
    load, 2 runs in 6; each test alone always passed)."""
    before = set(fulfilments.fulfilments)
    yield
    for order_id in set(fulfilments.fulfilments) - before:
        handle = time_skipping_env.client.get_workflow_handle(fulfillment_workflow_id(order_id))
        with suppress(RPCError):  # it has ended already
            await handle.terminate("the test is over")


def parcel(*lines: tuple[str, int]) -> ShipmentRequest:
    return ShipmentRequest(
        lines=[LineQuantity(order_line_id=line, quantity=qty) for line, qty in lines]
    )


async def refusal(update: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    return str(cause.type)


async def status_is(handle: Any, status: FulfillmentStatus) -> None:
    async def check() -> bool:
        return bool((await handle.query(FulfillmentWorkflow.status)).status == status)

    await eventually(check)


async def shipped_in_one_parcel(
    client: Client, fulfilments: FulfillmentStandIns, status: ShipmentStatus
) -> tuple[Fulfilment, WorkflowHandle[FulfillmentWorkflow, FulfillmentView], ShipmentCreated]:
    """A fulfilment whose whole order (two mugs, the tea) went in one parcel that the
    carrier has at ``status`` (its label bought or later): shipped. Returns the script,
    the fulfilment's handle and the parcel."""
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    sent = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2), (TEA, 1))
    )
    await carrier(client, sent.shipment_id, status)
    await status_is(handle, FulfillmentStatus.SHIPPED)
    return script, handle, sent


async def test_split_parcels_deliver_independently_and_it_ends_when_every_line_is_delivered(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    mugs = await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 2)))
    tea = await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((TEA, 1)))
    assert mugs.status == tea.status == ShipmentStatus.PENDING
    assert mugs.shipment_id.startswith("shp_")
    assert mugs.shipment_id != tea.shipment_id
    await status_is(handle, FulfillmentStatus.IN_PROGRESS)

    await carrier(client, mugs.shipment_id, ShipmentStatus.IN_TRANSIT)
    await status_is(handle, FulfillmentStatus.PARTIALLY_SHIPPED)
    await carrier(client, tea.shipment_id, ShipmentStatus.IN_TRANSIT)
    await status_is(handle, FulfillmentStatus.SHIPPED)
    await carrier(client, mugs.shipment_id, ShipmentStatus.DELIVERED)
    await status_is(handle, FulfillmentStatus.SHIPPED)  # the tea is still on its way
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

    await carrier(client, tea.shipment_id, ShipmentStatus.DELIVERED)
    view = await handle.result()
    assert view.status is FulfillmentStatus.DELIVERED
    assert {s.shipment_id: s.status for s in view.shipments} == {
        mugs.shipment_id: ShipmentStatus.DELIVERED,
        tea.shipment_id: ShipmentStatus.DELIVERED,
    }
    assert script.ran == [OPEN, CREATE, CREATE]
    first, _tea = script.inputs(CREATE)
    assert first["lines"] == [{"order_line_id": MUGS, "quantity": 2}]
    assert first["shipment_id"] == mugs.shipment_id
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(FULFILLMENT_STATUS) == "delivered"
    assert attributes.get(ORDER_ID) == script.order_id
    assert attributes.get(CUSTOMER_ID) == "usr_standin"
    # Each parcel is a child workflow that ran to its end, started with its attributes.
    child = await client.get_workflow_handle(shipment_workflow_id(tea.shipment_id)).describe()
    assert child.parent_id == handle.id
    assert child.typed_search_attributes.get(ORDER_ID) == script.order_id
    assert child.typed_search_attributes.get(SHIPMENT_STATUS) == "pending"  # its own to move
    # Since "local-fulfillment-steps": its database steps are local (markers, no activity
    # task), and an attribute is upserted only when it changes: the status went open,
    # in_progress, partially_shipped, shipped, delivered, while six parcel news came.
    events = [e async for e in handle.fetch_history_events()]
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
    assert kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED) >= 3  # open, two creates
    statuses = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields[
            FULFILLMENT_STATUS.name
        ].data
        for e in events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and FULFILLMENT_STATUS.name
        in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert [json.loads(s) for s in statuses] == [
        "open",
        "in_progress",
        "partially_shipped",
        "shipped",
        "delivered",
    ]


async def test_a_late_carrier_update_never_moves_a_parcel_back(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    _, handle, whole = await shipped_in_one_parcel(
        client, fulfilments, ShipmentStatus.OUT_FOR_DELIVERY
    )
    await carrier(client, whole.shipment_id, ShipmentStatus.IN_TRANSIT)  # late
    await carrier(client, whole.shipment_id, ShipmentStatus.DELIVERED)
    view = await handle.result()
    assert view.status is FulfillmentStatus.DELIVERED


async def test_the_validator_refuses_what_the_state_shows_is_wrong_before_any_activity(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    await status_is(handle, FulfillmentStatus.OPEN)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 1)))
    assert (
        await refusal(handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 2))))
        == "quantity_exceeds_unassigned"
    )
    assert (
        await refusal(
            handle.execute_update(FulfillmentWorkflow.create_shipment, parcel(("oline_x", 1)))
        )
        == "unknown_order_line"
    )
    assert await refusal(handle.execute_update(FulfillmentWorkflow.release)) == (
        "fulfillment_not_on_hold"
    )
    assert script.ran == [OPEN, CREATE]  # refused updates leave no trace
    await handle.execute_update(
        FulfillmentWorkflow.cancel, CancelFulfillmentRequest(reason="test over")
    )
    await handle.result()


async def test_the_activity_is_the_authority_and_its_code_reaches_the_caller(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment(
        fulfillment_create_shipment=ApplicationError(
            "2 asked, 1 left", type="quantity_exceeds_unassigned", non_retryable=True
        )
    )
    handle = await start_fulfilment(client, script.order_id)
    code = await refusal(
        handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 2)))
    )
    assert code == "quantity_exceeds_unassigned"
    assert (await handle.query(FulfillmentWorkflow.status)).shipments == []
    await handle.execute_update(FulfillmentWorkflow.cancel, CancelFulfillmentRequest())
    assert (await handle.result()).status is FulfillmentStatus.CANCELLED


async def test_hold_stops_new_parcels_until_released(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    held = await handle.execute_update(
        FulfillmentWorkflow.hold, HoldRequest(reason="address to confirm")
    )
    assert (held.status, held.hold_reason) == (FulfillmentStatus.ON_HOLD, "address to confirm")
    assert (await handle.describe()).typed_search_attributes.get(FULFILLMENT_STATUS) == "on_hold"
    assert (
        await refusal(handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 1))))
        == "fulfillment_on_hold"
    )
    released = await handle.execute_update(FulfillmentWorkflow.release)
    assert (released.status, released.hold_reason) == (FulfillmentStatus.IN_PROGRESS, None)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 1)))
    assert script.ran == [OPEN, HOLD, RELEASE, CREATE]
    assert script.inputs(HOLD) == [
        {"fulfillment_id": script.fulfillment_id, "reason": "address to confirm", "key": None}
    ]
    await handle.execute_update(FulfillmentWorkflow.cancel, CancelFulfillmentRequest())
    await handle.result()


async def test_cancel_before_any_label_cancels_parcels_then_refunds_restocks_and_emails(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    pending = await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 2)))
    view = await handle.execute_update(
        FulfillmentWorkflow.cancel, CancelFulfillmentRequest(reason="changed my mind")
    )
    assert view.status is FulfillmentStatus.CANCELLED
    assert [s.status for s in view.shipments] == [ShipmentStatus.CANCELLED]
    assert script.ran == [OPEN, CREATE, CANCEL, *UNDO]
    [close] = script.inputs(CLOSE)
    assert (close["order_id"], close["status"], close["detail"]) == (
        script.order_id,
        "cancelled",
        "changed my mind",
    )
    [email] = script.inputs("email.send")
    assert email["idempotency_key"] == f"order_cancelled:{script.order_id}"
    assert email["context"]["reason"] == "changed my mind"
    assert (await handle.result()).status is FulfillmentStatus.CANCELLED
    # The pending parcel's workflow was cancelled with it.
    child = await client.get_workflow_handle(shipment_workflow_id(pending.shipment_id)).describe()
    assert child.status is WorkflowExecutionStatus.CANCELED


async def test_a_cancel_from_temporal_while_staff_s_cancel_undoes_the_order_lets_it_finish(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """Staff cancel the fulfilment; while its refund runs an operator cancels the workflow
    (the UI, the CLI). The undo still ends (refund, the order closed, the email), staff's
    cancel is answered, and the workflow ends cancelled after it. Before, the workflow
    closed there: the stock back but the payment not refunded, the order left open."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    refund = Block()
    script.held[REFUND] = refund
    handle = await start_fulfilment(client, script.order_id)
    update = await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(reason="changed my mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await asyncio.wait_for(refund.started.wait(), 5)
    await handle.cancel()
    await until_event(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    refund.release()
    view = await asyncio.wait_for(update.result(), 10)
    assert view.status is FulfillmentStatus.CANCELLED
    assert script.ran == [OPEN, CANCEL, *UNDO]
    with pytest.raises(WorkflowFailureError):
        await handle.result()  # cancelled, as the operator asked
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED


async def test_cancel_after_a_label_is_refused_and_nothing_is_undone(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script, handle, labelled = await shipped_in_one_parcel(
        client, fulfilments, ShipmentStatus.LABEL_PURCHASED
    )
    code = await refusal(
        handle.execute_update(FulfillmentWorkflow.cancel, CancelFulfillmentRequest())
    )
    assert code == "fulfillment_has_labels"
    assert script.ran == [OPEN, CREATE]
    await carrier(client, labelled.shipment_id, ShipmentStatus.DELIVERED)
    assert (await handle.result()).status is FulfillmentStatus.DELIVERED


async def test_a_label_bought_meanwhile_makes_the_cancel_activity_refuse(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment(
        fulfillment_cancel=ApplicationError(
            "a shipment has a label", type="fulfillment_has_labels", non_retryable=True
        )
    )
    handle = await start_fulfilment(client, script.order_id)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 2)))
    code = await refusal(
        handle.execute_update(FulfillmentWorkflow.cancel, CancelFulfillmentRequest())
    )
    assert code == "fulfillment_has_labels"
    assert script.ran == [OPEN, CREATE, CANCEL]  # no refund, no restock
    await handle.terminate("test over")


async def test_a_cancel_whose_step_answers_late_is_carried_through_to_the_refund(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """The cancel step commits, its answer is lost, and the attempts after it fail too
    (more than a staff step's five: the database is away a while). The accepted cancel
    goes on until the step answers, then gives the stock back, refunds and closes the
    order. Before, the Update answered "try again" after five attempts with the rows
    cancelled and nothing undone, until staff cancelled again."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    script.flaky[CANCEL] = 6
    handle = await start_fulfilment(client, script.order_id)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((MUGS, 2)))
    cancel = await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(reason="changed my mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    # The run ends once the cancel is done (awaiting it lets the server skip the backoffs).
    assert (await handle.result()).status is FulfillmentStatus.CANCELLED
    assert (await cancel.result()).status is FulfillmentStatus.CANCELLED
    assert script.ran == [OPEN, CREATE, *[CANCEL] * 7, *UNDO]


async def test_a_carrier_exception_puts_the_fulfilment_on_hold_for_staff(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    lost = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2), (TEA, 1))
    )
    await carrier(client, lost.shipment_id, ShipmentStatus.IN_TRANSIT)
    await carrier(
        client,
        lost.shipment_id,
        ShipmentStatus.RETURN_TO_SENDER,
        exception=True,
        detail="address not found",
    )
    await status_is(handle, FulfillmentStatus.ON_HOLD)
    [hold] = script.inputs(HOLD)
    assert hold["reason"] == f"shipment {lost.shipment_id}: return_to_sender (address not found)"
    # Its lines are free again: after the release a new parcel may carry them.
    await handle.execute_update(FulfillmentWorkflow.release)
    again = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2), (TEA, 1))
    )
    await carrier(client, again.shipment_id, ShipmentStatus.DELIVERED)
    assert (await handle.result()).status is FulfillmentStatus.DELIVERED


async def test_each_exception_of_a_parcel_holds_by_its_own_key(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """A parcel's exceptions hold the fulfilment by keys that count them (its first, its
    second): a new exception after staff's release holds it again, while the same one
    told again to a reset run (``test_fulfillment_reset.py``) finds its hold was placed.
    Before, a hold had no key and an exception told again held it again."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    lost = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2), (TEA, 1))
    )
    await carrier(client, lost.shipment_id, ShipmentStatus.FAILURE, exception=True)
    await status_is(handle, FulfillmentStatus.ON_HOLD)
    await handle.execute_update(FulfillmentWorkflow.release)
    await carrier(client, lost.shipment_id, ShipmentStatus.RETURN_TO_SENDER, exception=True)
    await status_is(handle, FulfillmentStatus.ON_HOLD)
    keys = [i["key"] for i in script.inputs(HOLD)]
    assert keys == [f"hold:{lost.shipment_id}:1", f"hold:{lost.shipment_id}:2"]
    assert script.holds_placed == 2


async def test_a_cancel_the_carrier_refused_puts_the_fulfilment_on_hold_for_staff(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """A labelled parcel whose workflow an operator cancelled after the carrier scanned
    its label says so (still labelled, ``cancel_refused``): the fulfilment goes on hold
    with the reason, though the parcel's status did not move."""
    client = time_skipping_env.client
    script, handle, labelled = await shipped_in_one_parcel(
        client, fulfilments, ShipmentStatus.LABEL_PURCHASED
    )
    await carrier(
        client,
        labelled.shipment_id,
        ShipmentStatus.LABEL_PURCHASED,
        exception=True,
        cancel_refused=True,
        detail="cancel refused: the carrier has scanned the label; still tracked",
    )
    await status_is(handle, FulfillmentStatus.ON_HOLD)
    view = await handle.query(FulfillmentWorkflow.status)
    assert "cancel refused" in (view.hold_reason or "")
    assert script.ran == [OPEN, CREATE, HOLD]


async def test_a_refused_label_puts_the_fulfilment_on_hold_for_staff(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """The parcel stays pending (no label): ShipmentWorkflow tells it as an exception."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    stuck = await handle.execute_update(FulfillmentWorkflow.create_shipment, parcel((TEA, 1)))
    await carrier(
        client,
        stuck.shipment_id,
        ShipmentStatus.PENDING,
        exception=True,
        detail="label refused: address not found",
    )
    await status_is(handle, FulfillmentStatus.ON_HOLD)
    [hold] = script.inputs(HOLD)
    assert hold["reason"] == (
        f"shipment {stuck.shipment_id}: pending (label refused: address not found)"
    )
    await handle.terminate("test over")


async def test_the_updates_answer_to_the_names_the_typed_client_uses(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(time_skipping_env.client, script.order_id)
    created = await handle.execute_update(
        CREATE_SHIPMENT_UPDATE, parcel((TEA, 1)), result_type=ShipmentCreated
    )
    assert created.lines == [LineQuantity(order_line_id=TEA, quantity=1)]
    held = await handle.execute_update(
        HOLD_UPDATE, HoldRequest(reason="x"), result_type=FulfillmentView
    )
    assert held.status is FulfillmentStatus.ON_HOLD
    await handle.execute_update(RELEASE_UPDATE, result_type=FulfillmentView)
    done = await handle.execute_update(
        CANCEL_FULFILLMENT_UPDATE, CancelFulfillmentRequest(), result_type=FulfillmentView
    )
    assert done.status is FulfillmentStatus.CANCELLED


async def test_an_update_that_comes_with_the_start_waits_for_the_opening(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """Staff's first parcel may reach the workflow in its very first task, beside its
    start (update-with-start makes that certain). Its handler ran first, took the lock
    and waited for the opening that ``run`` makes holding the lock: the Update was
    accepted and neither ever moved again."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    start = WithStartWorkflowOperation(
        FulfillmentWorkflow.run,
        FulfillmentInput(order_id=script.order_id, priority=40, priority_level="high"),
        id=fulfillment_workflow_id(script.order_id),
        task_queue=str(TaskQueue.ORDERS),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    created = await asyncio.wait_for(
        client.execute_update_with_start_workflow(
            FulfillmentWorkflow.create_shipment, parcel((MUGS, 2)), start_workflow_operation=start
        ),
        timeout=30,
    )
    assert created.status is ShipmentStatus.PENDING
    assert script.ran == [OPEN, CREATE]
    handle = await start.workflow_handle()
    await status_is(handle, FulfillmentStatus.IN_PROGRESS)
    await handle.terminate("test over")


async def test_opened_again_it_takes_the_parcels_and_the_hold_the_database_has(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """``open`` answers a fulfilment opened before with its stored hold and parcels (a
    run reset to before what its earlier run did; ``test_fulfillment_reset.py`` resets
    on a dev server): the run takes them, so the parcel's news is not a stranger's and
    staff's release finds the hold. Before, the run knew none of it."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    script.flaky[OPEN] = 1  # the first opening's answer is lost: the retry opens again
    moving = ShipmentState(
        shipment_id="shp_stored", status=ShipmentStatus.IN_TRANSIT, lines=[LINES[0]]
    )
    script.stored[moving.shipment_id] = moving
    script.stored_hold = "shipment shp_stored: failure (no access)"
    handle = await start_fulfilment(client, script.order_id)
    await status_is(handle, FulfillmentStatus.ON_HOLD)
    view = await handle.query(FulfillmentWorkflow.status)
    assert view.hold_reason == script.stored_hold
    assert view.shipments == [moving]
    released = await handle.execute_update(FulfillmentWorkflow.release)
    assert released.hold_reason is None
    assert script.ran == [OPEN, OPEN, RELEASE]


async def test_opened_again_cancelled_it_finishes_the_order_s_undoing(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    """Opened again, the fulfilment is cancelled in the database while the run never
    saw the cancel (its Update came after the reset point and was not applied again):
    the run finishes the order's undoing (each step answers a repeat as the first: no
    second refund or email) and ends cancelled, instead of waiting for parcels that
    will never come."""
    client = time_skipping_env.client
    script = fulfilments.fulfilment()
    script.flaky[OPEN] = 1
    script.stored_cancelled = True
    handle = await start_fulfilment(client, script.order_id)
    assert (await handle.result()).status is FulfillmentStatus.CANCELLED
    assert script.ran == [OPEN, OPEN, *UNDO]
    [email] = script.inputs("email.send")
    assert email["idempotency_key"] == f"order_cancelled:{script.order_id}"
