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
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.accounts import Contact, ContactInput
from activities.email import SendEmailInput, SendEmailResult
from activities.payments import AuthorizationResult
from activities.system import ProbeInput, ProbeResult
from cli.stack.process import find_binary
from models.orders import LineSnapshot, OrderSnapshot, OrderStatus
from temporal.clients.orders import workflow_id
from temporal.queues import TaskQueue
from temporal.search_attributes import SEARCH_ATTRIBUTES
from workflows.carts import CartAbandonmentWorkflow
from workflows.onboarding import UserOnboardingWorkflow
from workflows.orders import OrderWorkflow
from workflows.system import StackProbeInput, StackProbeWorkflow
from workflows.types.carts import AbandonmentInput
from workflows.types.onboarding import OnboardingInput
from workflows.types.orders import (
    CancelRequest,
    CloseInput,
    ExtendInput,
    OrderInput,
    OrderRef,
    OrderView,
    PaymentWebhook,
    ReserveInput,
)

HISTORIES = Path(__file__).resolve().parent / "histories"
WORKFLOWS = [CartAbandonmentWorkflow, UserOnboardingWorkflow, StackProbeWorkflow, OrderWorkflow]

# --- stand-in activities ------------------------------------------------------------------
# The order id picks the path an order's stand-ins take.

PAID = "ord_recorded_paid"
DECLINED = "ord_recorded_declined"
OUT_OF_STOCK = "ord_recorded_out_of_stock"
CANCELLED_IN_3DS = "ord_recorded_cancelled_in_3ds"
THREE_DS_COMPLETED = "ord_recorded_3ds_completed"
THREE_DS_TIMED_OUT = "ord_recorded_3ds_timed_out"
NEEDS_3DS = {CANCELLED_IN_3DS, THREE_DS_COMPLETED, THREE_DS_TIMED_OUT}

USER = "usr_recorded"
MUG = LineSnapshot(product_id="prd_recorded_mug", name="Mug", quantity=2, unit_price=1250,
                   line_total=2500)  # fmt: skip
TEA = LineSnapshot(product_id="prd_recorded_tea", name="Tea", quantity=1, unit_price=899,
                   line_total=899)  # fmt: skip


@activity.defn(name="email.send")
async def send_email(input: SendEmailInput) -> SendEmailResult:
    return SendEmailResult(message_id="msg_recorded", provider_message_id="x", already_sent=False)


@activity.defn(name="accounts.contact")
async def contact(input: ContactInput) -> Contact:
    return Contact(active=True, email="ada@example.com", name="Ada")


@activity.defn(name="system.probe")
async def probe(input: ProbeInput) -> ProbeResult:
    return ProbeResult(queue=input.queue, host="recorder", pid=1, database=True, redis=True)


@activity.defn(name="orders.validate")
async def validate(input: OrderRef) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=input.order_id, user_id=USER, email="ada@example.com", name="Ada",
        currency="USD", total=MUG.line_total + TEA.line_total, lines=[MUG, TEA],
    )  # fmt: skip


@activity.defn(name="orders.reserve_stock")
async def reserve_stock(input: ReserveInput) -> None:
    if input.order_id == OUT_OF_STOCK:
        short = {"productId": TEA.product_id, "requested": TEA.quantity, "available": 0}
        raise ApplicationError(
            f"not enough stock for: {TEA.product_id}", {"unavailableItems": [short]},
            type="out_of_stock", non_retryable=True,
        )  # fmt: skip


@activity.defn(name="orders.extend_reservation")
async def extend_reservation(input: ExtendInput) -> int:
    return 2


@activity.defn(name="orders.confirm")
async def confirm(input: OrderRef) -> None:
    pass


@activity.defn(name="orders.commit_stock")
async def commit_stock(input: OrderRef) -> int:
    return 2


@activity.defn(name="orders.queue_fulfillment")
async def queue_fulfillment(input: OrderRef) -> None:
    pass


@activity.defn(name="orders.release_stock")
async def release_stock(input: OrderRef) -> int:
    return 0 if input.order_id == OUT_OF_STOCK else 2  # out of stock: nothing was held


@activity.defn(name="orders.undo_confirm")
async def undo_confirm(input: OrderRef) -> bool:
    return False


@activity.defn(name="orders.close")
async def close(input: CloseInput) -> bool:
    return True


@activity.defn(name="payments.authorize")
async def authorize(input: OrderRef) -> AuthorizationResult:
    if input.order_id == DECLINED:
        raise ApplicationError(
            "Your card was declined.", {"reason": "card_declined", "intentId": "pi_recorded"},
            type="payment_declined", non_retryable=True,
        )  # fmt: skip
    if input.order_id in NEEDS_3DS:
        url = "https://hooks.stripe.com/3d_secure_2/hosted?payment_intent=pi_recorded"
        return AuthorizationResult(status="requires_action", next_action_url=url)
    return AuthorizationResult(status="authorized")


@activity.defn(name="payments.refresh")
async def refresh(input: OrderRef) -> AuthorizationResult:
    if input.order_id == THREE_DS_COMPLETED:
        return AuthorizationResult(status="authorized")
    return AuthorizationResult(status="requires_action")


@activity.defn(name="payments.capture")
async def capture(input: OrderRef) -> int:
    return MUG.line_total + TEA.line_total


@activity.defn(name="payments.void_or_refund")
async def void_or_refund(input: OrderRef) -> str:
    return "voided"


# --- the recordings: each drives one workflow and returns its id --------------------------

Recording = Callable[[WorkflowEnvironment, str], Awaitable[str]]
RECORDINGS: dict[str, Recording] = {}


def recording(name: str) -> Callable[[Recording], Recording]:
    def register(fn: Recording) -> Recording:
        RECORDINGS[name] = fn
        return fn

    return register


CART = AbandonmentInput(
    cart_id="cart_recorded", user_id="user_1", email="ada@example.com", name="Ada",
    delay_seconds=24 * 3600,
)  # fmt: skip


@recording("cart_abandonment_reminded")
async def cart_reminded(env: WorkflowEnvironment, queue: str) -> str:
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run, CART, id="cart-reminded", task_queue=queue,
        start_signal="cart_changed",
    )  # fmt: skip
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


@recording("user_onboarding_sent")
async def onboarding(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        UserOnboardingWorkflow.run,
        OnboardingInput(user_id="user_1", email="ada@example.com", name="Ada"),
        id="onboarding", task_queue=queue,
    )  # fmt: skip
    return "onboarding"


@recording("stack_probe_ok")
async def stack_probe(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        StackProbeWorkflow.run, StackProbeInput(queues=[queue]), id="probe", task_queue=queue
    )
    return "probe"


async def _start_order(env: WorkflowEnvironment, order_id: str) -> WorkflowHandle[Any, OrderView]:
    return await env.client.start_workflow(
        OrderWorkflow.run, OrderInput(order_id=order_id, user_id=USER),
        id=workflow_id(order_id), task_queue=str(TaskQueue.ORDERS),
    )  # fmt: skip


async def _order_ends(
    handle: WorkflowHandle[Any, OrderView], status: str, code: str | None
) -> None:
    view = await handle.result()
    assert (view.status, view.failure_code) == (status, code), view


async def _waiting_for_3ds(handle: WorkflowHandle[Any, OrderView]) -> None:
    """Until the workflow waits for the customer (its 3-D Secure timer has started)."""
    for _ in range(200):
        history = await handle.fetch_history()
        if any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{handle.id} never waited for 3-D Secure")


@recording("order_fulfillment_queued")
async def order_paid(env: WorkflowEnvironment, queue: str) -> str:
    handle = await _start_order(env, PAID)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_payment_declined")
async def order_declined(env: WorkflowEnvironment, queue: str) -> str:
    handle = await _start_order(env, DECLINED)
    await _order_ends(handle, OrderStatus.FAILED, "payment_declined")
    return handle.id


@recording("order_out_of_stock")
async def order_out_of_stock(env: WorkflowEnvironment, queue: str) -> str:
    handle = await _start_order(env, OUT_OF_STOCK)
    await _order_ends(handle, OrderStatus.FAILED, "out_of_stock")
    return handle.id


@recording("order_cancelled_during_3ds")
async def order_cancelled(env: WorkflowEnvironment, queue: str) -> str:
    handle = await _start_order(env, CANCELLED_IN_3DS)
    await _waiting_for_3ds(handle)
    # Time stands still outside result(), so the 15 min wait cannot end before this.
    view = await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="changed mind"))
    assert view.status == OrderStatus.CANCELLED, view
    await _order_ends(handle, OrderStatus.CANCELLED, None)
    return handle.id


@recording("order_3ds_completed")
async def order_3ds_completed(env: WorkflowEnvironment, queue: str) -> str:
    handle = await _start_order(env, THREE_DS_COMPLETED)
    await _waiting_for_3ds(handle)
    webhook = PaymentWebhook(
        event_id="evt_recorded", type="payment_intent.amount_capturable_updated",
        intent_id="pi_recorded",
    )  # fmt: skip
    await handle.signal(OrderWorkflow.payment_webhook, webhook)
    await _order_ends(handle, OrderStatus.FULFILLMENT_QUEUED, None)
    return handle.id


@recording("order_3ds_timed_out")
async def order_3ds_timed_out(env: WorkflowEnvironment, queue: str) -> str:
    handle = await _start_order(env, THREE_DS_TIMED_OUT)
    await _order_ends(handle, OrderStatus.FAILED, "payment_action_timeout")  # time skips
    return handle.id


# --- running them -------------------------------------------------------------------------


async def _save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


def _workers(client: Client, queue: str) -> list[Worker]:
    orders: list[Callable[..., Any]] = [
        validate, reserve_stock, extend_reservation, confirm, commit_stock,
        queue_fulfillment, release_stock, undo_confirm, close,
    ]  # fmt: skip
    payments: list[Callable[..., Any]] = [authorize, refresh, capture, void_or_refund]
    ours = [OrderWorkflow]
    others = [w for w in WORKFLOWS if w not in ours]
    return [
        Worker(client, task_queue=queue, workflows=others, activities=[send_email, contact, probe]),
        Worker(client, task_queue=str(TaskQueue.ORDERS), workflows=ours, activities=orders),
        Worker(client, task_queue=str(TaskQueue.PAYMENTS), activities=payments),
        Worker(client, task_queue=str(TaskQueue.NOTIFICATIONS), activities=[send_email]),
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
        async with AsyncExitStack() as stack:
            for worker in _workers(env.client, queue):
                await stack.enter_async_context(worker)
            for name in wanted:
                await _save(env.client, await RECORDINGS[name](env, queue), name)
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(RECORDINGS))
    parser.add_argument("--overwrite", action="store_true", help="re-record existing files")
    args = parser.parse_args()
    if unknown := set(args.names) - set(RECORDINGS):
        parser.error(f"no such recording: {', '.join(sorted(unknown))}")
    asyncio.run(record(args.names or list(RECORDINGS), overwrite=args.overwrite))


if __name__ == "__main__":
    main()
