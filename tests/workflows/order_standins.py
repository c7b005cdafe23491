"""Stand-in activities for ``OrderWorkflow``, registered under the real activity names
on the real task queues, shared by the workflow tests and the history recorder.

Each order has a ``Script``: for an activity name, what the stand-in does on each
attempt (the last step repeats; an activity with no plan answers as the happy path
would). Every call is recorded in order, forward steps and compensations alike, so a
test can assert the exact sequence the saga took.

Inputs are read as plain JSON (``order_id``, or the email's ``context.order_id``), so a
change to an input type's other fields leaves the stand-ins alone; results are the
real result types, so the workflow (and a recorded history) sees realistic payloads.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import uuid4

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Interceptor, Worker

from activities.email import SendEmailResult
from activities.payments import AuthorizationResult
from models.orders import LineSnapshot, OrderSnapshot
from temporal.attempts import StepAttempts
from temporal.clients.orders import workflow_id
from temporal.queues import TaskQueue
from tests.stack import suite_worker
from workflows.orders import OrderWorkflow
from workflows.types.orders import OrderInput, OrderView

USER = "usr_recorded"
MUG = LineSnapshot(
    product_id="prd_recorded_mug", name="Mug", quantity=2, unit_price=1250, line_total=2500
)
TEA = LineSnapshot(
    product_id="prd_recorded_tea", name="Tea", quantity=1, unit_price=899, line_total=899
)
TOTAL = MUG.line_total + TEA.line_total
# A blocked stand-in hears of its cancellation within a few heartbeats.
HEARTBEAT_THROTTLE = timedelta(milliseconds=20)
THREE_DS_URL = "https://hooks.stripe.com/3d_secure_2/hosted?payment_intent=pi_recorded"


# Activity names as ``Script.ran`` lists them (an email with its template).
VALIDATE, RESERVE, AUTHORIZE = "orders.validate", "orders.reserve_stock", "payments.authorize"
CONFIRM, COMMIT, CAPTURE = "orders.confirm", "orders.commit_stock", "payments.capture"
EXTEND, REFRESH = "orders.extend_reservation", "payments.refresh"
HOLD_AGAIN = "orders.reserve_again"
FULFIL, CLOSE = "orders.queue_fulfillment", "orders.close"
RELEASE, VOID = "orders.release_stock", "payments.void_or_refund"
UNDO_CONFIRM = "orders.undo_confirm"
CONFIRMATION = "email.send:order_confirmation"
FAILED_EMAIL, CANCELLED_EMAIL = "email.send:order_failed", "email.send:order_cancelled"
FORWARD = [VALIDATE, RESERVE, AUTHORIZE, CONFIRM, COMMIT, CAPTURE]
AUTHORISED = FORWARD[:3]
# Compensations in the order they run, from the last step that registered one.
UNDO_ORDER = [UNDO_CONFIRM, VOID, RELEASE]  # from create-order on
UNDO_PAYMENT = [VOID, RELEASE]  # from process-payment
ENDS_FAILED, ENDS_CANCELLED = [CLOSE, FAILED_EMAIL], [CLOSE, CANCELLED_EMAIL]
# A payment failure's email comes from the payment.failed event's subscriber instead.
ENDS_PAYMENT_FAILED = [CLOSE]


def ends_queued(ran: list[str], forward: list[str] = FORWARD) -> None:
    """The forward steps in order, then the confirmation and fulfilment in parallel."""
    assert ran[: len(forward)] == forward
    assert sorted(ran[len(forward) :]) == [CONFIRMATION, FULFIL]


def snapshot(order_id: str) -> OrderSnapshot:
    """What validate-order answers for every order: two lines, 33.99 USD."""
    return OrderSnapshot(
        order_id=order_id,
        user_id=USER,
        email="ada@example.com",
        name="Ada",
        currency="USD",
        total=TOTAL,
        lines=[MUG, TEA],
    )


def free_snapshot(order_id: str) -> OrderSnapshot:
    """What validate-order answers for a free order: the two lines, a 100 % coupon and
    free shipping, 0 to pay."""
    return snapshot(order_id).model_copy(
        update={
            "total": 0,
            "subtotal": TOTAL,
            "automatic_discounts": 0,
            "coupon_code": "FREE100",
            "coupon_discount": TOTAL,
            "shipping": 0,
            "tax": 0,
        }
    )


# --- what a stand-in does on one attempt ----------------------------------------------


@dataclass(frozen=True)
class Succeed:
    """Answer ``value``, or (without one) what the happy path answers."""

    value: Any = None


@dataclass(frozen=True)
class Fail:
    """Raise an ``ApplicationError``: by default a business error, which is final."""

    type: str
    message: str = "the stand-in failed"
    details: Mapping[str, Any] | None = None
    non_retryable: bool = True


@dataclass
class Block:
    """Wait until released (then answer as the happy path would) or cancelled.

    It heartbeats while it waits, so a cancelled activity hears of it (the workers'
    heartbeat throttle is short). It must end before its workflow does: an activity
    still running holds the time-skipping server's clock for every test after it."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False

    def release(self) -> None:
        self.released.set()

    async def wait(self) -> None:
        self.started.set()
        try:
            while not self.released.is_set():
                if not activity.info().is_local:  # a local step has no heartbeats
                    activity.heartbeat()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.released.wait(), timeout=0.02)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.ended.set()


Step = Succeed | Fail | Block


def flaky(times: int, type: str = "provider_unavailable") -> list[Step]:
    """Fail ``times`` times with a transient (retryable) error, then succeed."""
    steps: list[Step] = [Fail(type, "a transient failure", non_retryable=False)] * times
    return [*steps, Succeed()]


def stock_gone(line: LineSnapshot, available: int) -> Fail:
    """What a stock step answers when ``line`` is short, ``available`` of it left."""
    short = {"productId": line.product_id, "requested": line.quantity, "available": available}
    return Fail(
        "out_of_stock", f"not enough stock for: {line.product_id}", {"unavailableItems": [short]}
    )


def authorization(status: str, **fields: Any) -> Succeed:
    """What ``payments.authorize`` or ``payments.refresh`` answers."""
    return Succeed(AuthorizationResult.model_validate({"status": status} | fields))


def requires_action() -> Succeed:
    return authorization("requires_action", next_action_url=THREE_DS_URL)


@dataclass(frozen=True)
class Call:
    name: str  # the activity name
    input: dict[str, Any]

    @property
    def label(self) -> str:
        """The name, and for an email its template (``email.send:order_failed``)."""
        if self.name == "email.send":
            return f"{self.name}:{self.input.get('template')}"
        return self.name


@dataclass
class Script:
    """One order: its plan by activity name, and the calls its stand-ins received."""

    order_id: str
    plan: dict[str, Sequence[Step]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    @property
    def ran(self) -> list[str]:
        """Every attempt of every activity, in the order they started."""
        return [c.label for c in self.calls]

    def inputs(self, name: str) -> list[dict[str, Any]]:
        return [c.input for c in self.calls if c.name == name]

    def next_step(self, name: str) -> Step:
        steps = self.plan.get(name) or [Succeed()]
        attempt = sum(c.name == name for c in self.calls) - 1  # this call is recorded
        return steps[min(attempt, len(steps) - 1)]

    async def record(self, call: Call) -> None:
        async with self._progress:
            self.calls.append(call)
            self._progress.notify_all()

    async def called(self, label: str, times: int = 1) -> None:
        """Until ``label`` has started ``times`` times (at most a few seconds)."""
        try:
            async with asyncio.timeout(5), self._progress:
                await self._progress.wait_for(lambda: self.ran.count(label) >= times)
        except TimeoutError:
            raise AssertionError(f"{label} ran {self.ran.count(label)} times: {self.ran}") from None


# --- the stand-ins --------------------------------------------------------------------

_ids = itertools.count()


class OrderStandIns:
    """Every activity ``OrderWorkflow`` calls; each order follows its own ``Script``."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}

    def order(self, plan: Mapping[str, Sequence[Step]] | None = None) -> Script:
        """A script for a new order (a fresh id)."""
        order_id = f"ord_standin_{next(_ids)}_{uuid4().hex[:6]}"
        return self.script(order_id, plan)

    def release_all(self) -> None:
        """End every block (after a test, passed or not, so none outlives it)."""
        for script in self.scripts.values():
            for steps in script.plan.values():
                for step in steps:
                    if isinstance(step, Block):
                        step.release()

    def script(self, order_id: str, plan: Mapping[str, Sequence[Step]] | None = None) -> Script:
        script = self.scripts.setdefault(order_id, Script(order_id))
        script.plan.update(plan or {})
        return script

    async def _act(self, name: str, input: dict[str, Any], answer: Callable[[str], Any]) -> Any:
        order_id = str(input.get("order_id") or input.get("context", {}).get("order_id"))
        script = self.script(order_id)
        await script.record(Call(name, input))
        step = script.next_step(name)
        if isinstance(step, Fail):
            details = [dict(step.details)] if step.details is not None else []
            raise ApplicationError(
                step.message, *details, type=step.type, non_retryable=step.non_retryable
            )
        if isinstance(step, Block):
            await step.wait()
        elif step.value is not None:
            return step.value
        return answer(order_id)

    # queue orders

    @activity.defn(name="orders.validate")
    async def validate(self, input: dict[str, Any]) -> OrderSnapshot:
        result: OrderSnapshot = await self._act("orders.validate", input, snapshot)
        return result

    @activity.defn(name="orders.reserve_stock")
    async def reserve_stock(self, input: dict[str, Any]) -> None:
        await self._act("orders.reserve_stock", input, lambda _: None)

    @activity.defn(name="orders.extend_reservation")
    async def extend_reservation(self, input: dict[str, Any]) -> int:
        result: int = await self._act("orders.extend_reservation", input, lambda _: 2)
        return result

    @activity.defn(name="orders.reserve_again")
    async def reserve_again(self, input: dict[str, Any]) -> int:
        result: int = await self._act("orders.reserve_again", input, lambda _: 0)
        return result

    @activity.defn(name="orders.confirm")
    async def confirm(self, input: dict[str, Any]) -> None:
        await self._act("orders.confirm", input, lambda _: None)

    @activity.defn(name="orders.commit_stock")
    async def commit_stock(self, input: dict[str, Any]) -> int:
        result: int = await self._act("orders.commit_stock", input, lambda _: 2)
        return result

    @activity.defn(name="orders.queue_fulfillment")
    async def queue_fulfillment(self, input: dict[str, Any]) -> None:
        await self._act("orders.queue_fulfillment", input, lambda _: None)

    @activity.defn(name="orders.release_stock")
    async def release_stock(self, input: dict[str, Any]) -> int:
        result: int = await self._act("orders.release_stock", input, lambda _: 2)
        return result

    @activity.defn(name="orders.undo_confirm")
    async def undo_confirm(self, input: dict[str, Any]) -> bool:
        result: bool = await self._act("orders.undo_confirm", input, lambda _: False)
        return result

    @activity.defn(name="orders.close")
    async def close(self, input: dict[str, Any]) -> bool:
        result: bool = await self._act("orders.close", input, lambda _: True)
        return result

    # queue payments

    @activity.defn(name="payments.authorize")
    async def authorize(self, input: dict[str, Any]) -> AuthorizationResult:
        result: AuthorizationResult = await self._act(
            "payments.authorize", input, lambda _: AuthorizationResult(status="authorized")
        )
        return result

    @activity.defn(name="payments.refresh")
    async def refresh(self, input: dict[str, Any]) -> AuthorizationResult:
        result: AuthorizationResult = await self._act(
            "payments.refresh", input, lambda _: AuthorizationResult(status="authorized")
        )
        return result

    @activity.defn(name="payments.capture")
    async def capture(self, input: dict[str, Any]) -> int:
        result: int = await self._act("payments.capture", input, lambda _: TOTAL)
        return result

    @activity.defn(name="payments.void_or_refund")
    async def void_or_refund(self, input: dict[str, Any]) -> str:
        result: str = await self._act("payments.void_or_refund", input, lambda _: "voided")
        return result

    # queue notifications

    @activity.defn(name="email.send")
    async def send_email(self, input: dict[str, Any]) -> SendEmailResult:
        result: SendEmailResult = await self._act(
            "email.send",
            input,
            lambda _: SendEmailResult(
                message_id="msg_recorded", provider_message_id="x", already_sent=False
            ),
        )
        return result

    def workers(
        self, client: Client, *, interceptors: Sequence[Interceptor] = (), **orders_worker: Any
    ) -> list[Worker]:
        """``OrderWorkflow`` and these stand-ins on the real queues, with the real
        workers' retry budgets (``StepAttempts``); ``interceptors`` and ``orders_worker``
        (worker options) are the ``orders`` worker's too."""
        orders = [
            self.validate,
            self.reserve_stock,
            self.extend_reservation,
            self.reserve_again,
            self.confirm,
            self.commit_stock,
            self.queue_fulfillment,
            self.release_stock,
            self.undo_confirm,
            self.close,
        ]
        payments = [self.authorize, self.refresh, self.capture, self.void_or_refund]
        return [
            suite_worker(
                client,
                task_queue=str(TaskQueue.ORDERS),
                workflows=[OrderWorkflow],
                activities=orders,
                interceptors=[StepAttempts(), *interceptors],
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                **orders_worker,
            ),
            suite_worker(
                client,
                task_queue=str(TaskQueue.PAYMENTS),
                activities=payments,
                interceptors=[StepAttempts()],
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            ),
            suite_worker(
                client,
                task_queue=str(TaskQueue.NOTIFICATIONS),
                activities=[self.send_email],
                interceptors=[StepAttempts()],
            ),
        ]

    @asynccontextmanager
    async def running(self, client: Client, **orders_worker: Any) -> AsyncIterator[OrderStandIns]:
        async with AsyncExitStack() as stack:
            for worker in self.workers(client, **orders_worker):
                await stack.enter_async_context(worker)
            yield self


async def start_order(
    client: Client, order_id: str, *, task_timeout: timedelta | None = None, **fields: Any
) -> WorkflowHandle[Any, OrderView]:
    return await client.start_workflow(
        OrderWorkflow.run,
        OrderInput.model_validate({"order_id": order_id, "user_id": USER} | fields),
        id=workflow_id(order_id),
        task_queue=str(TaskQueue.ORDERS),
        task_timeout=task_timeout,
    )


async def until_event(
    handle: WorkflowHandle[Any, Any], event_type: EventType.ValueType, times: int = 1
) -> None:
    """Until the workflow's history holds ``times`` events of ``event_type``."""
    for _ in range(400):
        history = await handle.fetch_history()
        if sum(e.event_type == event_type for e in history.events) >= times:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{handle.id} never had {times} {EventType.Name(event_type)}")


async def waiting_for_3ds(handle: WorkflowHandle[Any, OrderView], timers: int = 1) -> None:
    """Until the workflow waits for the customer (its ``timers``-th 3-D Secure wait has
    started its timer)."""
    await until_event(handle, EventType.EVENT_TYPE_TIMER_STARTED, timers)
