"""Record the event histories that ``test_replay.py`` replays.

Run after a deliberate, compatible workflow change (``workflow.patched``) to add a
history for the new code path; never to paper over a replay failure, which means the
change would break workflows already running:

    .venv/bin/python -m tests.workflows.record_histories [NAME ...] [--overwrite]

It records the named histories (default: every one below) whose file does not exist
yet. A committed history stands for workflows started by the code of its day, so it is
kept: ``--overwrite`` re-records one only when that is really meant.

Workflows run on Temporal's time-skipping test server, against stand-in activities
registered under the real activity names on the real task queues, which return the
real result types (so the histories carry realistic payloads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.accounts import Contact, ContactInput
from activities.email import SendEmailInput, SendEmailResult
from activities.system import ProbeInput, ProbeResult
from cli.stack.process import find_binary
from models.fulfillment import FulfillmentStatus, ShipmentStatus
from models.orders import OrderStatus
from temporal.queues import TaskQueue
from temporal.search_attributes import SEARCH_ATTRIBUTES
from tests.stack import suite_worker
from tests.workflows.fulfillment_standins import (
    CANCEL,
    MUGS,
    REFUND,
    FulfillmentStandIns,
    carrier,
    start_fulfilment,
)
from tests.workflows.fulfillment_standins import TEA as TEA_LINE
from tests.workflows.order_standins import (
    AUTHORIZE,
    EXTEND,
    HOLD_AGAIN,
    REFRESH,
    RELEASE,
    RESERVE,
    TEA,
    VALIDATE,
    VOID,
    Block,
    Fail,
    OrderStandIns,
    Step,
    Succeed,
    flaky,
    free_snapshot,
    requires_action,
    start_order,
    until_event,
    waiting_for_3ds,
)
from tests.workflows.shipment_standins import (
    BOOK,
    DELAYED,
    DELIVERED,
    OUT,
    PRE,
    TRANSIT,
    ShipmentStandIns,
    parcel,
    progress,
    start_under_parent,
    until,
    update,
)
from tests.workflows.shipment_standins import (
    REFUND as LABEL_REFUND,
)
from workflows.carts import CartAbandonmentWorkflow
from workflows.events import EventBatchWorkflow, EventDeliveryWorkflow, EventFanoutWorkflow
from workflows.fulfillment import FulfillmentWorkflow
from workflows.maintenance import AnalyticsRollupWorkflow
from workflows.onboarding import UserOnboardingWorkflow
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipments import ShipmentWorkflow
from workflows.system import StackProbeInput, StackProbeWorkflow
from workflows.types.analytics import RollupInput, RollupResult
from workflows.types.carts import AbandonmentInput
from workflows.types.events import (
    DEAD_LETTER_ACTIVITY,
    DELIVER_ACTIVITY,
    BatchInput,
    DeadLetterInput,
    DeliveryInput,
    DeliveryRef,
    DeliveryResult,
    DeliveryStep,
    FanoutInput,
    SubscriberDelivery,
)
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    RETRY_LABEL_SIGNAL,
    fulfillment_workflow_id,
)
from workflows.types.fulfillment_orders import (
    CancelFulfillmentRequest,
    FulfillmentInput,
    FulfillmentView,
    HoldRequest,
    LineQuantity,
    ShipmentRequest,
)
from workflows.types.onboarding import OnboardingInput
from workflows.types.orders import CancelRequest, OrderView, PaymentWebhook
from workflows.types.shipments import ShipmentView

HISTORIES = Path(__file__).resolve().parent / "histories"
WORKFLOWS = [
    CartAbandonmentWorkflow,
    UserOnboardingWorkflow,
    StackProbeWorkflow,
    OrderWorkflow,
    EventDeliveryWorkflow,
    EventFanoutWorkflow,
    EventBatchWorkflow,
    FulfillmentWorkflow,
    ReturnWorkflow,  # its histories: record_return_histories.py
    ShipmentWorkflow,
    AnalyticsRollupWorkflow,
]

# --- stand-in activities ------------------------------------------------------------------
# OrderWorkflow's are shared with its tests; each recorded order follows its own script.

PAID = "ord_recorded_paid"
DECLINED = "ord_recorded_declined"
# Since the "payment-failed-email-by-event" patch: no order_failed email from the workflow.
DECLINED_BY_EVENT = "ord_recorded_declined_by_event"
OUT_OF_STOCK = "ord_recorded_out_of_stock"
CANCELLED_IN_3DS = "ord_recorded_cancelled_in_3ds"
THREE_DS_COMPLETED = "ord_recorded_3ds_completed"
THREE_DS_TIMED_OUT = "ord_recorded_3ds_timed_out"
# Since the "local-database-steps" patch: database steps as local activities, fewer upserts.
PAID_LOCAL_STEPS = "ord_recorded_paid_local_steps"
OUT_OF_STOCK_LOCAL_STEPS = "ord_recorded_out_of_stock_local_steps"
# Since the "undo-finishes-when-cancelled" patch: a cancel from Temporal while the
# declined payment's void runs; the undo finishes.
CANCELLED_WHILE_UNDOING = "ord_recorded_cancelled_while_undoing"
UNDO_HELD = Block()
# Since "free-orders-uncharged": an order priced at 0 has no payment steps.
FREE = "ord_recorded_free"
# Since "stock-held-again-after-3ds": the hold had lapsed (the extension found nothing),
# the stock is held again when the customer authenticates.
THREE_DS_HELD_AGAIN = "ord_recorded_3ds_held_again"
# Since "stock-held-again-after-authorise": authorise retried past half the hold's TTL
# (two transient failures, 3 s of a 4 s TTL), the stock is held again after it.
AUTHORISED_HELD_AGAIN = "ord_recorded_authorised_held_again"
# Since "order-patches-decided-at-start": the two patches above are not asked (that one
# is, in the first workflow task).
PAID_AT_START = "ord_recorded_paid_patches_at_start"
FREE_AT_START = "ord_recorded_free_patches_at_start"
OUT_OF_STOCK_AT_START = "ord_recorded_out_of_stock_patches_at_start"
SHORT = {"productId": TEA.product_id, "requested": TEA.quantity, "available": 0}
UNAVAILABLE = {"unavailableItems": [SHORT]}
DECLINE = {"reason": "card_declined", "intentId": "pi_recorded"}
SCRIPTS: dict[str, dict[str, Sequence[Step]]] = {
    PAID: {},
    DECLINED: {AUTHORIZE: [Fail("payment_declined", "Your card was declined.", DECLINE)]},
    DECLINED_BY_EVENT: {AUTHORIZE: [Fail("payment_declined", "Your card was declined.", DECLINE)]},
    OUT_OF_STOCK: {
        RESERVE: [Fail("out_of_stock", f"not enough stock for: {TEA.product_id}", UNAVAILABLE)],
        RELEASE: [Succeed(0)],  # nothing was held
    },
    PAID_LOCAL_STEPS: {},
    OUT_OF_STOCK_LOCAL_STEPS: {
        RESERVE: [Fail("out_of_stock", f"not enough stock for: {TEA.product_id}", UNAVAILABLE)],
        RELEASE: [Succeed(0)],
    },
    CANCELLED_IN_3DS: {AUTHORIZE: [requires_action()], REFRESH: [requires_action()]},
    CANCELLED_WHILE_UNDOING: {
        AUTHORIZE: [Fail("payment_declined", "Your card was declined.", DECLINE)],
        VOID: [UNDO_HELD],
    },
    THREE_DS_COMPLETED: {AUTHORIZE: [requires_action()]},
    THREE_DS_HELD_AGAIN: {
        AUTHORIZE: [requires_action()],
        EXTEND: [Succeed(0)],
        HOLD_AGAIN: [Succeed(2)],
    },
    AUTHORISED_HELD_AGAIN: {AUTHORIZE: flaky(2), HOLD_AGAIN: [Succeed(2)]},
    FREE: {VALIDATE: [Succeed(free_snapshot(FREE))]},
    PAID_AT_START: {},
    FREE_AT_START: {VALIDATE: [Succeed(free_snapshot(FREE_AT_START))]},
    OUT_OF_STOCK_AT_START: {
        RESERVE: [Fail("out_of_stock", f"not enough stock for: {TEA.product_id}", UNAVAILABLE)],
        RELEASE: [Succeed(0)],
    },
    THREE_DS_TIMED_OUT: {AUTHORIZE: [requires_action()], REFRESH: [requires_action()]},
}


# The first reminder of this cart waits for the recording to change the cart.
CHANGED_DURING_REMINDER_CART = "cart_recorded_changed_during_reminder"
SENDING_REMINDER = asyncio.Event()
CHANGED_DURING_REMINDER = asyncio.Event()


@activity.defn(name="email.send")
async def send_email(input: SendEmailInput) -> SendEmailResult:
    if (
        CHANGED_DURING_REMINDER_CART in input.idempotency_key
        and not CHANGED_DURING_REMINDER.is_set()
    ):
        SENDING_REMINDER.set()
        await CHANGED_DURING_REMINDER.wait()
    return SendEmailResult(message_id="msg_recorded", provider_message_id="x", already_sent=False)


# A cart asked about by id (since "cart-checked-at-deadline") was checked out.
CHECKED_OUT_CART = "cart_recorded_checked_out"


# The first contact step of this cart waits for the recording to change the cart.
CHANGED_AT_DEADLINE_CART = "cart_recorded_changed_at_deadline"
ASKED_AT_DEADLINE = asyncio.Event()
CHANGED_AT_DEADLINE = asyncio.Event()


@activity.defn(name="accounts.contact")
async def contact(input: ContactInput) -> Contact:
    if input.cart_id == CHANGED_AT_DEADLINE_CART and not CHANGED_AT_DEADLINE.is_set():
        ASKED_AT_DEADLINE.set()
        await CHANGED_AT_DEADLINE.wait()
    active = input.cart_id != CHECKED_OUT_CART
    return Contact(active=True, email="ada@example.com", name="Ada", cart_active=active)


@activity.defn(name="system.probe")
async def probe(input: ProbeInput) -> ProbeResult:
    return ProbeResult(queue=input.queue, host="recorder", pid=1, database=True, redis=True)


@activity.defn(name="analytics.refresh_rollups")
async def refresh_rollups(input: RollupInput) -> RollupResult:
    return RollupResult(hours=2, refund_hours=0, watermark=datetime(2026, 12, 4, 12, tzinfo=UTC))


DEAD_EVENT = "evt_recorded_dead"
# A fan-out of three whose crm delivery is a dead letter, the others delivered.
FANOUT_DEAD_EVENT = "evt_recorded_fanout_dead"


@activity.defn(name=DELIVER_ACTIVITY)
async def deliver_event(input: DeliveryInput) -> DeliveryResult:
    if input.event_id == DEAD_EVENT or (
        input.event_id == FANOUT_DEAD_EVENT and input.subscriber == "crm"
    ):
        raise ApplicationError("no such customer", type="customer_not_found", non_retryable=True)
    return DeliveryResult(outcome=DeliveryStep.DELIVERED)


@activity.defn(name=DEAD_LETTER_ACTIVITY)
async def dead_letter_event(input: DeadLetterInput) -> DeliveryResult:
    return DeliveryResult(outcome=DeliveryStep.FAILED, error=input.error)


# --- the recordings: each drives one workflow and returns its id --------------------------

Recording = Callable[[WorkflowEnvironment, str], Awaitable[str]]
RECORDINGS: dict[str, Recording] = {}


def recording(name: str) -> Callable[[Recording], Recording]:
    def register(fn: Recording) -> Recording:
        RECORDINGS[name] = fn
        return fn

    return register


CART = AbandonmentInput(
    cart_id="cart_recorded",
    user_id="user_1",
    email="ada@example.com",
    name="Ada",
    delay_seconds=24 * 3600,
)


@recording("cart_abandonment_reminded")
async def cart_reminded(env: WorkflowEnvironment, queue: str) -> str:
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART,
        id="cart-reminded",
        task_queue=queue,
        start_signal="cart_changed",
    )
    await env.sleep(timedelta(hours=5))
    await handle.signal(CartAbandonmentWorkflow.cart_changed)
    await handle.result()
    return handle.id


@recording("cart_abandonment_closed")
async def cart_closed(env: WorkflowEnvironment, queue: str) -> str:
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run, CART, id="cart-closed", task_queue=queue
    )
    await env.sleep(timedelta(hours=1))
    await handle.signal(CartAbandonmentWorkflow.cart_closed)
    await handle.result()
    return handle.id


@recording("cart_abandonment_checked_out")
async def cart_checked_out(env: WorkflowEnvironment, queue: str) -> str:
    """Since "cart-checked-at-deadline": checkout signals nothing; at the deadline the
    cart is found checked out and no reminder goes."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART.model_copy(update={"cart_id": CHECKED_OUT_CART}),
        id="cart-checked-out",
        task_queue=queue,
    )
    assert await handle.result() == "closed"
    return handle.id


@recording("cart_abandonment_changed_at_deadline")
async def cart_changed_at_deadline(env: WorkflowEnvironment, queue: str) -> str:
    """Since "cart-change-at-deadline": the shopper is back while the deadline's contact
    step runs; the workflow waits again and reminds a day after the change."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART.model_copy(update={"cart_id": CHANGED_AT_DEADLINE_CART}),
        id="cart-changed-at-deadline",
        task_queue=queue,
        start_signal="cart_changed",
    )
    with env.auto_time_skipping_disabled():
        await env.sleep(timedelta(hours=24, seconds=1))
        await asyncio.wait_for(ASKED_AT_DEADLINE.wait(), 10)
        await handle.signal(CartAbandonmentWorkflow.cart_changed)
        CHANGED_AT_DEADLINE.set()
    assert await handle.result() == "reminded"
    return handle.id


@recording("cart_abandonment_changed_during_reminder")
async def cart_changed_during_reminder(env: WorkflowEnvironment, queue: str) -> str:
    """Since "cart-change-during-reminder": the shopper is back while the reminder goes
    out; the first run's history, which ends by continuing as new."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART.model_copy(update={"cart_id": CHANGED_DURING_REMINDER_CART}),
        id="cart-changed-during-reminder",
        task_queue=queue,
        start_signal="cart_changed",
    )
    first = handle.result_run_id
    with env.auto_time_skipping_disabled():
        await env.sleep(timedelta(hours=24, seconds=1))
        await asyncio.wait_for(SENDING_REMINDER.wait(), 10)
        await handle.signal(CartAbandonmentWorkflow.cart_changed)
        CHANGED_DURING_REMINDER.set()
    assert await handle.result() == "reminded"
    return f"{handle.id}@{first}"


@recording("user_onboarding_sent")
async def onboarding(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        UserOnboardingWorkflow.run,
        OnboardingInput(user_id="user_1", email="ada@example.com", name="Ada"),
        id="onboarding",
        task_queue=queue,
    )
    return "onboarding"


@recording("analytics_rollup_ok")
async def analytics_rollup(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        AnalyticsRollupWorkflow.run, RollupInput(), id="analytics-rollup", task_queue=queue
    )
    return "analytics-rollup"


@recording("stack_probe_ok")
async def stack_probe(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        StackProbeWorkflow.run, StackProbeInput(queues=[queue]), id="probe", task_queue=queue
    )
    return "probe"


async def _deliver(env: WorkflowEnvironment, queue: str, event_id: str) -> str:
    ref = {"event_id": event_id, "subscriber": "crm", "event_type": "order.created"}
    await env.client.execute_workflow(
        EventDeliveryWorkflow.run,
        DeliveryInput(**ref),
        id=f"event-crm-{event_id}-0",
        task_queue=queue,
    )
    return f"event-crm-{event_id}-0"


@recording("event_delivery_delivered")
async def event_delivered(env: WorkflowEnvironment, queue: str) -> str:
    return await _deliver(env, queue, "evt_recorded_ok")


@recording("event_delivery_dead_letter")
async def event_dead_letter(env: WorkflowEnvironment, queue: str) -> str:
    return await _deliver(env, queue, DEAD_EVENT)


async def _fan_out(env: WorkflowEnvironment, queue: str, event_id: str) -> str:
    subscribers = ["crm", "customer_emails", "lifetime_value"]
    await env.client.execute_workflow(
        EventFanoutWorkflow.run,
        FanoutInput(
            event_id=event_id,
            event_type="order.created",
            deliveries=[SubscriberDelivery(subscriber=name) for name in subscribers],
        ),
        id=f"events-{event_id}",
        task_queue=queue,
    )
    return f"events-{event_id}"


@recording("event_fanout_delivered")
async def event_fanout_delivered(env: WorkflowEnvironment, queue: str) -> str:
    return await _fan_out(env, queue, "evt_recorded_fanout_ok")


@recording("event_fanout_dead_letter")
async def event_fanout_dead_letter(env: WorkflowEnvironment, queue: str) -> str:
    return await _fan_out(env, queue, FANOUT_DEAD_EVENT)


@recording("event_batch_with_a_dead_letter")
async def event_batch(env: WorkflowEnvironment, queue: str) -> str:
    """A relay pass's batch: two events, one of whose crm deliveries is a dead letter."""
    refs = [
        DeliveryRef(event_id=event, subscriber=name, event_type="order.created")
        for event, name in [
            ("evt_recorded_batch_ok", "crm"),
            ("evt_recorded_batch_ok", "customer_emails"),
            (FANOUT_DEAD_EVENT, "crm"),
            (FANOUT_DEAD_EVENT, "lifetime_value"),
        ]
    ]
    await env.client.execute_workflow(
        EventBatchWorkflow.run,
        BatchInput(deliveries=refs),
        id="events-batch-recorded",
        task_queue=queue,
    )
    return "events-batch-recorded"


async def _order_ends(
    handle: WorkflowHandle[Any, OrderView], status: str, code: str | None
) -> None:
    view = await handle.result()
    assert (view.status, view.failure_code) == (status, code), view


@recording("order_fulfillment_queued")
async def order_paid(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, PAID)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_fulfillment_queued_local_steps")
async def order_paid_local_steps(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, PAID_LOCAL_STEPS)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_out_of_stock_local_steps")
async def order_out_of_stock_local_steps(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, OUT_OF_STOCK_LOCAL_STEPS)
    await _order_ends(handle, OrderStatus.FAILED, "out_of_stock")
    return handle.id


@recording("order_free_fulfillment_queued")
async def order_free(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, FREE)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_fulfillment_queued_patches_decided_at_start")
async def order_paid_patches_at_start(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, PAID_AT_START)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_free_patches_decided_at_start")
async def order_free_patches_at_start(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, FREE_AT_START)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_out_of_stock_patches_decided_at_start")
async def order_out_of_stock_patches_at_start(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, OUT_OF_STOCK_AT_START)
    await _order_ends(handle, OrderStatus.FAILED, "out_of_stock")
    return handle.id


@recording("order_payment_declined")
async def order_declined(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, DECLINED)
    await _order_ends(handle, OrderStatus.FAILED, "payment_declined")
    return handle.id


@recording("order_payment_declined_by_event")
async def order_declined_by_event(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, DECLINED_BY_EVENT)
    await _order_ends(handle, OrderStatus.FAILED, "payment_declined")
    return handle.id


@recording("order_out_of_stock")
async def order_out_of_stock(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, OUT_OF_STOCK)
    await _order_ends(handle, OrderStatus.FAILED, "out_of_stock")
    return handle.id


@recording("order_cancelled_during_3ds")
async def order_cancelled(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, CANCELLED_IN_3DS)
    await waiting_for_3ds(handle)
    # Time stands still outside result(), so the 15 min wait cannot end before this.
    view = await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="changed mind"))
    assert view.status == OrderStatus.CANCELLED, view
    await _order_ends(handle, OrderStatus.CANCELLED, None)
    return handle.id


@recording("order_cancelled_from_temporal_while_undoing")
async def order_cancelled_while_undoing(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, CANCELLED_WHILE_UNDOING)
    await asyncio.wait_for(UNDO_HELD.started.wait(), 10)
    await handle.cancel()
    await until_event(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    UNDO_HELD.release()
    await _order_ends(handle, OrderStatus.FAILED, "payment_declined")  # not cancelled
    return handle.id


@recording("order_3ds_completed")
async def order_3ds_completed(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, THREE_DS_COMPLETED)
    await waiting_for_3ds(handle)
    webhook = PaymentWebhook(
        event_id="evt_recorded",
        type="payment_intent.amount_capturable_updated",
        intent_id="pi_recorded",
    )
    await handle.signal(OrderWorkflow.payment_webhook, webhook)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_3ds_stock_held_again")
async def order_3ds_held_again(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, THREE_DS_HELD_AGAIN)
    await waiting_for_3ds(handle)
    webhook = PaymentWebhook(
        event_id="evt_recorded_held_again",
        type="payment_intent.amount_capturable_updated",
        intent_id="pi_recorded",
    )
    await handle.signal(OrderWorkflow.payment_webhook, webhook)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_authorised_stock_held_again")
async def order_authorised_held_again(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, AUTHORISED_HELD_AGAIN, reservation_ttl_seconds=4.0)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_3ds_timed_out")
async def order_3ds_timed_out(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, THREE_DS_TIMED_OUT)
    await _order_ends(handle, OrderStatus.FAILED, "payment_action_timeout")  # time skips
    return handle.id


# FulfillmentWorkflow's recordings run with its own stand-ins (which answer some of the
# order activities' names too), after the others.
FULFILMENTS = FulfillmentStandIns()
FULFILMENT_RECORDINGS: set[str] = set()


def fulfilment_recording(name: str) -> Callable[[Recording], Recording]:
    FULFILMENT_RECORDINGS.add(name)
    return recording(name)


def _parcel(*lines: tuple[str, int]) -> ShipmentRequest:
    return ShipmentRequest(lines=[LineQuantity(order_line_id=ln, quantity=q) for ln, q in lines])


async def _fulfilment_ends(handle: WorkflowHandle[Any, FulfillmentView], status: str) -> None:
    view = await handle.result()
    assert view.status == status, view


# Since the "local-fulfillment-steps" patch (its parcels' workflows since
# "local-tracking-steps"): local database steps, upserts only of what changed; since
# "parcel-id-from-update", each parcel named by its Update's id.
# Since "fulfillment-patches-decided-at-start": that patch is asked in the first
# workflow task, and the ones it stands for (parcel-id-from-update, cancel-until-answered,
# handlers-finish-when-cancelled) are not asked.
@fulfilment_recording("fulfillment_delivered_patches_decided_at_start")
@fulfilment_recording("fulfillment_parcels_named_by_their_updates")
@fulfilment_recording("fulfillment_delivered_in_two_parcels_local_steps")
@fulfilment_recording("fulfillment_delivered_in_two_parcels")
async def fulfilment_delivered(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    mugs = await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((MUGS, 2)))
    tea = await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((TEA_LINE, 1)))
    for shipment in (mugs, tea):
        await carrier(env.client, shipment.shipment_id, ShipmentStatus.LABEL_PURCHASED)
        await carrier(env.client, shipment.shipment_id, ShipmentStatus.IN_TRANSIT)
    await carrier(env.client, mugs.shipment_id, ShipmentStatus.DELIVERED)
    await carrier(env.client, tea.shipment_id, ShipmentStatus.DELIVERED)
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


@fulfilment_recording("fulfillment_cancelled_from_temporal_patches_decided_at_start")
@fulfilment_recording("fulfillment_cancelled_from_temporal_while_undoing")
async def fulfilment_cancelled_while_undoing(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "handlers-finish-when-cancelled" patch: staff's cancel is refunding the
    order when the workflow is cancelled from Temporal; the undo finishes, then the
    workflow ends cancelled."""
    script = FULFILMENTS.fulfilment()
    refund = script.held[REFUND] = Block()
    handle = await start_fulfilment(env.client, script.order_id)
    update = await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(reason="changed mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await asyncio.wait_for(refund.started.wait(), 10)
    await handle.cancel()
    await until_event(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    refund.release()
    assert (await update.result()).status == FulfillmentStatus.CANCELLED
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    return handle.id


@fulfilment_recording("fulfillment_cancelled_before_label_local_steps")
@fulfilment_recording("fulfillment_cancelled_before_label")
async def fulfilment_cancelled(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((MUGS, 1)))
    await handle.execute_update(
        FulfillmentWorkflow.cancel, CancelFulfillmentRequest(reason="changed mind")
    )
    await _fulfilment_ends(handle, FulfillmentStatus.CANCELLED)
    return handle.id


# Since the "cancel-until-answered" patch: the cancel step's answer is lost six times
# (more than a staff step's five attempts), and the cancel goes on to the refund.
@fulfilment_recording("fulfillment_cancel_answered_late_patches_decided_at_start")
@fulfilment_recording("fulfillment_cancel_step_answered_late")
async def fulfilment_cancel_answered_late(env: WorkflowEnvironment, queue: str) -> str:
    script = FULFILMENTS.fulfilment()
    script.flaky[CANCEL] = 6
    handle = await start_fulfilment(env.client, script.order_id)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((MUGS, 1)))
    await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(reason="changed mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await _fulfilment_ends(handle, FulfillmentStatus.CANCELLED)
    return handle.id


@fulfilment_recording("fulfillment_held_by_carrier_then_released_local_steps")
@fulfilment_recording("fulfillment_held_by_carrier_then_released")
async def fulfilment_held(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    await handle.execute_update(FulfillmentWorkflow.hold, HoldRequest(reason="address check"))
    await handle.execute_update(FulfillmentWorkflow.release)
    lost = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, _parcel((MUGS, 2), (TEA_LINE, 1))
    )
    await carrier(
        env.client, lost.shipment_id, ShipmentStatus.FAILURE, exception=True, detail="no access"
    )
    for _ in range(100):  # the hold is the workflow's next step
        if (await handle.query(FulfillmentWorkflow.status)).hold_reason:
            break
        await asyncio.sleep(0.05)
    await handle.execute_update(FulfillmentWorkflow.release)
    await carrier(env.client, lost.shipment_id, ShipmentStatus.DELIVERED)
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


# A parcel whose cancel the carrier refused (it scanned the label) tells its fulfilment,
# still labelled: an exception, the fulfilment on hold; released, it is delivered.
@fulfilment_recording("fulfillment_held_for_a_refused_parcel_cancel")
async def fulfilment_held_for_a_refused_cancel(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    labelled = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, _parcel((MUGS, 2), (TEA_LINE, 1))
    )
    await carrier(env.client, labelled.shipment_id, ShipmentStatus.LABEL_PURCHASED)
    await carrier(
        env.client,
        labelled.shipment_id,
        ShipmentStatus.LABEL_PURCHASED,
        exception=True,
        cancel_refused=True,
        detail="cancel refused: the carrier has scanned the label; still tracked",
    )
    for _ in range(100):  # the hold is the workflow's next step
        if (await handle.query(FulfillmentWorkflow.status)).hold_reason:
            break
        await asyncio.sleep(0.05)
    await handle.execute_update(FulfillmentWorkflow.release)
    await carrier(env.client, labelled.shipment_id, ShipmentStatus.DELIVERED)
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


# Since the "updates-wait-for-open" patch: an Update waits for the opening before it takes
# the lock; this one comes with the start (in the first workflow task).
@fulfilment_recording("fulfillment_parcel_with_the_start")
async def fulfilment_parcel_with_the_start(env: WorkflowEnvironment, queue: str) -> str:
    order_id = FULFILMENTS.fulfilment().order_id
    start = WithStartWorkflowOperation(
        FulfillmentWorkflow.run,
        FulfillmentInput(order_id=order_id, priority=40, priority_level="high"),
        id=fulfillment_workflow_id(order_id),
        task_queue=str(TaskQueue.ORDERS),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    parcel = await env.client.execute_update_with_start_workflow(
        FulfillmentWorkflow.create_shipment,
        _parcel((MUGS, 2), (TEA_LINE, 1)),
        start_workflow_operation=start,
    )
    await carrier(env.client, parcel.shipment_id, ShipmentStatus.DELIVERED)
    handle = await start.workflow_handle()
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


# ShipmentWorkflow: stand-ins keep each parcel's status; parcel ids name the recordings.
# They run with their own stand-ins (the real ShipmentWorkflow under a stand-in parent on
# the orders queue, where FulfillmentWorkflow's stand-ins have a stand-in parcel), last.
SHIPMENT_STANDINS = ShipmentStandIns()
SHIPMENT_RECORDINGS: set[str] = set()


def shipment_recording(name: str) -> Callable[[Recording], Recording]:
    SHIPMENT_RECORDINGS.add(name)
    return recording(name)


SHIPMENT_STANDINS.refusals["shp_recorded_refused"] = 1


async def _shipment_ends(handle: WorkflowHandle[Any, ShipmentView], status: str) -> None:
    view = await handle.result()
    assert view.status == status, view


@shipment_recording("shipment_delivered")
async def shipment_delivered(env: WorkflowEnvironment, queue: str) -> str:
    """Under a fulfilment (signals to the parent), with a redelivery and a late update."""
    return await _delivered(env, "shp_recorded_delivered")


@shipment_recording("shipment_delivered_local_steps")
async def shipment_delivered_local_steps(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "local-tracking-steps" patch: the same, recorded in local steps, the
    updates that waited together."""
    return await _delivered(env, "shp_recorded_delivered_local_steps")


@shipment_recording("shipment_delivered_patches_decided_at_start")
async def shipment_delivered_patches_decided_at_start(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "shipment-patches-decided-at-start" patch: the same, the stall clock's
    patch asked in the first workflow task (its marker there), not after a local step."""
    return await _delivered(env, "shp_recorded_delivered_patches_at_start")


async def _delivered(env: WorkflowEnvironment, sid: str) -> str:
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    for event_id, statuses in [
        ("e1", (PRE, TRANSIT)),
        ("e2", (PRE, TRANSIT, OUT)),
        ("e2", (PRE, TRANSIT, OUT)),
        ("e0", (PRE, TRANSIT)),
        ("e3", (PRE, TRANSIT, OUT, DELIVERED)),
    ]:
        await child.signal(CARRIER_UPDATE_SIGNAL, update(event_id, sid, *statuses))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    return child.id


@shipment_recording("shipment_delayed_then_delivered")
async def shipment_delayed(env: WorkflowEnvironment, queue: str) -> str:
    return await _delayed(env, "shp_recorded_delayed")


@shipment_recording("shipment_delayed_then_delivered_local_steps")
async def shipment_delayed_local_steps(env: WorkflowEnvironment, queue: str) -> str:
    return await _delayed(env, "shp_recorded_delayed_local_steps")


async def _delayed(env: WorkflowEnvironment, sid: str) -> str:
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await env.sleep(timedelta(hours=73))
    await SHIPMENT_STANDINS.called(sid, DELAYED)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_stalled_from_carrier_time")
async def shipment_stalled_from_carrier_time(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "stall-from-carrier-time" patch: the carrier's scans, 80 h old, make the
    parcel late at once; the next scan moves it on."""
    return await _stalled_from_carrier_time(env, "shp_recorded_stalled_by_carrier")


@shipment_recording("shipment_stalled_patches_decided_at_start")
async def shipment_stalled_patches_decided_at_start(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "shipment-patches-decided-at-start" patch: the same, in local steps, the
    stall clock's patch asked in the first workflow task."""
    return await _stalled_from_carrier_time(env, "shp_recorded_stalled_patches_at_start")


async def _stalled_from_carrier_time(env: WorkflowEnvironment, sid: str) -> str:
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    old = await env.get_current_time() - timedelta(hours=80)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, last_at=old))
    await env.sleep(timedelta(seconds=11))
    await SHIPMENT_STANDINS.called(sid, DELAYED)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_label_refused_then_retried")
async def shipment_refused(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_refused"
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await child.signal(RETRY_LABEL_SIGNAL)
    await SHIPMENT_STANDINS.called(sid, BOOK, 2)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_continued_as_new")
async def shipment_continued(env: WorkflowEnvironment, queue: str) -> str:
    """The first run's history: it ends by continuing as new."""
    sid = "shp_recorded_continued"
    handle = await env.client.start_workflow(
        ShipmentWorkflow.run,
        parcel(sid, max_updates_per_run=2),
        id=f"shipment-{sid}",
        task_queue="orders",
    )
    first = handle.result_run_id
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    latest = env.client.get_workflow_handle(handle.id, result_type=ShipmentView)
    await SHIPMENT_STANDINS.called(sid, "shipping.record_update", 2)
    for _ in range(500):
        if (await latest.describe()).run_id != first:
            break
        await asyncio.sleep(0.01)
    await latest.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    await _shipment_ends(latest, ShipmentStatus.DELIVERED)
    return f"{handle.id}@{first}"


@shipment_recording("shipment_redelivered_with_the_start")
async def shipment_redelivered_with_the_start(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "early-carrier-updates-deduped" patch: a run carrying e0 and e1 (as a
    continued run does) gets e1 again in its first workflow task (signal-with-start), a
    new e2 with it, then e3: e1 is dropped, e2 and e3 recorded."""
    sid = "shp_recorded_redelivered_with_start"
    handle = await env.client.start_workflow(
        ShipmentWorkflow.run,
        parcel(
            sid,
            status=ShipmentStatus.IN_TRANSIT,
            tracking_code=f"9400{sid}",
            seen_event_ids=["e0", "e1"],
        ),
        id=f"shipment-{sid}",
        task_queue="orders",
        start_signal=CARRIER_UPDATE_SIGNAL,
        start_signal_args=[update("e1", sid, PRE, TRANSIT)],
    )
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    await SHIPMENT_STANDINS.called(sid, "shipping.record_update", 1)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    await _shipment_ends(handle, ShipmentStatus.DELIVERED)
    assert SHIPMENT_STANDINS.ran(sid) == ["shipping.record_update"] * 2
    return handle.id


@shipment_recording("shipment_cancelled_label_refunded")
async def shipment_cancelled(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_cancelled"
    handle = await env.client.start_workflow(
        ShipmentWorkflow.run, parcel(sid), id=f"shipment-{sid}", task_queue="orders"
    )
    await SHIPMENT_STANDINS.called(sid, BOOK)
    for _ in range(500):
        view = await handle.query(ShipmentWorkflow.status)
        if view.status == ShipmentStatus.LABEL_PURCHASED:
            break
        await asyncio.sleep(0.01)
    await handle.cancel()
    await _shipment_ends(handle, ShipmentStatus.CANCELLED)
    return handle.id


# Since the "cancel-refused-keeps-tracking" patch: cancelled after the carrier scanned the
# label, the refund is refused; the parcel is kept tracked to the door, the parent told.
SHIPMENT_STANDINS.in_use.add("shp_recorded_cancel_refused")


@shipment_recording("shipment_cancel_refused_kept_tracking")
async def shipment_cancel_refused(env: WorkflowEnvironment, queue: str) -> str:
    return await shipment_cancel_refused_in(env, "shp_recorded_cancel_refused")


async def shipment_cancel_refused_in(env: WorkflowEnvironment, sid: str) -> str:
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    for _ in range(500):
        view = await child.query(ShipmentWorkflow.status)
        if view.status == ShipmentStatus.LABEL_PURCHASED:
            break
        await asyncio.sleep(0.01)
    await child.cancel()
    await SHIPMENT_STANDINS.called(sid, LABEL_REFUND)
    for _ in range(500):
        if (await child.query(ShipmentWorkflow.status)).problem:
            break
        await asyncio.sleep(0.01)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    return child.id


# Since the "repeated-cancel-refused" patch: the refusal is remembered (carried into a
# later run), the first run recording the patch's marker.
SHIPMENT_STANDINS.in_use.add("shp_recorded_cancel_refused_remembered")


@shipment_recording("shipment_cancel_refused_remembered")
async def shipment_cancel_refused_remembered(env: WorkflowEnvironment, queue: str) -> str:
    return await shipment_cancel_refused_in(env, "shp_recorded_cancel_refused_remembered")


# A later run of a parcel whose cancel the carrier refused (its carried input says so),
# cancelled again: refused the same way, the parent told, the carrier not asked; tracked
# to the door. Started with the carried input: the test server cannot continue a
# cancelled workflow as new.
@shipment_recording("shipment_cancel_refused_again_in_a_later_run")
async def shipment_cancel_refused_again(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_cancel_refused_again"
    child, parent = await start_under_parent(
        env.client,
        parcel(
            sid,
            status=ShipmentStatus.IN_TRANSIT,
            tracking_code=f"9400{sid}",
            seen_event_ids=["e1"],
            cancel_refused=True,
        ),
    )
    await until(child, lambda view: view.status == ShipmentStatus.IN_TRANSIT)
    await child.cancel()
    for _ in range(500):
        if await progress(parent):
            break
        await asyncio.sleep(0.01)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    assert LABEL_REFUND not in SHIPMENT_STANDINS.ran(sid)
    return child.id


# Since the "cancel-keeps-unrecorded-updates" patch: a cancel and the parcel's delivery
# reach it in one workflow task (both came while a pre-transit scan's local step held the
# previous one open); the delivery's step, started first, is cancelled; the carrier refuses
# the cancel, and the delivery, pending again, is recorded after it.
SHIPMENT_STANDINS.in_use.add("shp_recorded_cancel_with_an_update")


@shipment_recording("shipment_cancelled_with_an_update")
async def shipment_cancelled_with_an_update(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_cancel_with_an_update"
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await until(child, lambda view: view.status == ShipmentStatus.LABEL_PURCHASED)
    await SHIPMENT_STANDINS.cancel_with_update(
        child, sid, update("e1", sid, PRE, TRANSIT, DELIVERED)
    )
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    assert SHIPMENT_STANDINS.batches[sid] == [1, 1], SHIPMENT_STANDINS.batches[sid]
    return child.id


# Since the "moving-parcel-cancel-refused" patch: cancelled once the parcel is in transit,
# the cancel is refused without asking the carrier (nothing to void), the parent told, and
# the parcel tracked to the door.
@shipment_recording("shipment_moving_parcel_cancel_refused")
async def shipment_moving_parcel_cancel_refused(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_moving_cancel_refused"
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await until(child, lambda view: view.status == ShipmentStatus.IN_TRANSIT)
    await child.cancel()
    await until(child, lambda view: view.problem is not None)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    assert LABEL_REFUND not in SHIPMENT_STANDINS.ran(sid)
    return child.id


# --- running them -------------------------------------------------------------------------


async def _save(client: Client, workflow_id: str, name: str) -> None:
    """``workflow_id``, or ``id@run`` for one run of a workflow that continued as new."""
    workflow_id, _, run_id = workflow_id.partition("@")
    history = await client.get_workflow_handle(workflow_id, run_id=run_id or None).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


def _workers(client: Client, queue: str) -> list[Worker]:
    standins = OrderStandIns()
    for order_id, plan in SCRIPTS.items():
        standins.script(order_id, plan)
    others = [w for w in WORKFLOWS if w not in (OrderWorkflow, ReturnWorkflow, ShipmentWorkflow)]
    return [
        suite_worker(
            client,
            task_queue=queue,
            workflows=others,
            activities=[
                send_email,
                contact,
                probe,
                deliver_event,
                dead_letter_event,
                refresh_rollups,
            ],
        ),
        *standins.workers(client),
    ]


async def record(names: list[str], overwrite: bool = False) -> None:
    wanted = [n for n in names if overwrite or not (HISTORIES / f"{n}.json").exists()]
    for name in sorted(set(names) - set(wanted)):
        print(f"kept {name} (exists; --overwrite to record it again)")
    if not wanted:
        return
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )
    try:
        # OrderWorkflow upserts these; the test server has none registered (and no
        # ListSearchAttributes, so not temporal.search_attributes.ensure_search_attributes).
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                search_attributes=SEARCH_ATTRIBUTES, namespace=env.client.namespace
            )
        )
        queue = f"record-{uuid4().hex[:6]}"
        others = [
            n for n in wanted if n not in FULFILMENT_RECORDINGS and n not in SHIPMENT_RECORDINGS
        ]
        if others:
            async with AsyncExitStack() as stack:
                for worker in _workers(env.client, queue):
                    await stack.enter_async_context(worker)
                for name in others:
                    await _save(env.client, await RECORDINGS[name](env, queue), name)
        fulfilments = [n for n in wanted if n in FULFILMENT_RECORDINGS]
        if fulfilments:
            async with FULFILMENTS.running(env.client):
                for name in fulfilments:
                    await _save(env.client, await RECORDINGS[name](env, queue), name)
        parcels = [n for n in wanted if n in SHIPMENT_RECORDINGS]
        if parcels:
            async with SHIPMENT_STANDINS.running(env.client):
                for name in parcels:
                    await _save(env.client, await RECORDINGS[name](env, queue), name)
    finally:
        await env.shutdown()


def recorder_main(
    doc: str,
    recordings: Collection[str],
    record: Callable[[list[str], bool], Coroutine[Any, Any, None]],
) -> None:
    """A recording script's command line: the names to record (default: all) and
    ``--overwrite``. It exits without finalising the interpreter: the SDK core's threads
    outlive ``asyncio.run`` and one of them, releasing the GIL during finalisation,
    aborted the process (``PyGILState_Release``, exit 134) after every history was saved."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(recordings))
    parser.add_argument("--overwrite", action="store_true", help="re-record existing files")
    args = parser.parse_args()
    if unknown := set(args.names) - set(recordings):
        parser.error(f"no such recording: {', '.join(sorted(unknown))}")
    asyncio.run(record(args.names or list(recordings), args.overwrite))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    recorder_main(
        __doc__ or "", RECORDINGS, lambda names, overwrite: record(names, overwrite=overwrite)
    )


if __name__ == "__main__":
    main()
