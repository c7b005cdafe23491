"""``OrderWorkflow``'s recordings: each recorded order follows its own script of the
stand-in activities (``tests/workflows/order_standins.py``, shared with its tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
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
    Step,
    Succeed,
    flaky,
    free_snapshot,
    requires_action,
    start_order,
    until_event,
    waiting_for_3ds,
)
from tests.workflows.recordings import recording
from workflows.orders import OrderWorkflow
from workflows.types.orders import CancelRequest, OrderView, PaymentWebhook

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
# Since "authorise-waits-out-outages": the provider unreachable for a round of
# process-payment's attempts, authorised in the next round after a pause.
AUTHORISED_AFTER_OUTAGE = "ord_recorded_authorised_after_outage"
PROVIDER_DOWN = Fail("payment_unavailable", "stripe: unavailable", non_retryable=False)
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
    AUTHORISED_AFTER_OUTAGE: {AUTHORIZE: [PROVIDER_DOWN] * 3 + [Succeed()]},
}


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


@recording("order_authorised_after_a_provider_outage")
async def order_authorised_after_outage(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_order(env.client, AUTHORISED_AFTER_OUTAGE, authorize_timeout_seconds=60.0)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)  # time skips
    return handle.id
