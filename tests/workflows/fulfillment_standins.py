"""Stand-ins for ``FulfillmentWorkflow``'s activities and for its child, registered
under the real names on the real task queues; shared by the workflow tests and the
history recorder.

Each fulfilment (by order id) has a plan: for an activity name, the ``Fail`` it raises
instead of answering. Every call is recorded in order. The stand-in ``ShipmentWorkflow``
does what w3's real one promises its parent: after each carrier update (here the
test-only ``carrier`` signal) it signals ``shipment_progress``, and it ends when the
parcel is delivered or returned, or when it is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import uuid4

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Interceptor

from activities.email import SendEmailResult
from models.fulfillment import FulfillmentStatus, ShipmentStatus
from temporal.queues import TaskQueue
from tests.stack import suite_worker
from tests.workflows.order_standins import Block
from workflows.fulfillment import FulfillmentWorkflow
from workflows.types.fulfillment import (
    SHIPMENT_PROGRESS_SIGNAL,
    SHIPMENT_WORKFLOW,
    ShipmentInput,
    ShipmentProgress,
    fulfillment_workflow_id,
    shipment_workflow_id,
)
from workflows.types.fulfillment_orders import (
    FulfillmentCancelInput,
    FulfillmentCancelled,
    FulfillmentChange,
    FulfillmentHoldInput,
    FulfillmentInput,
    FulfillmentOpened,
    FulfillmentRef,
    FulfillmentView,
    LineQuantity,
    NewShipment,
    ShipmentCreated,
    ShipmentState,
)

MUGS, TEA = "oline_mugs", "oline_tea"
LINES = [LineQuantity(order_line_id=MUGS, quantity=2), LineQuantity(order_line_id=TEA, quantity=1)]
CARRIER_SIGNAL = "carrier"  # test-only: drives the stand-in parcel
OPEN, CREATE, HOLD = "fulfillment.open", "fulfillment.create_shipment", "fulfillment.hold"
RELEASE, CANCEL = "fulfillment.release", "fulfillment.cancel"
RESTOCK, REFUND, CLOSE = "orders.release_stock", "payments.void_or_refund", "orders.close"
CANCELLED_EMAIL = "email.send:order_cancelled"
UNDO = [RESTOCK, REFUND, CLOSE, CANCELLED_EMAIL]
FINAL = frozenset(
    {ShipmentStatus.DELIVERED, ShipmentStatus.RETURN_TO_SENDER, ShipmentStatus.CANCELLED}
)


@workflow.defn(name=SHIPMENT_WORKFLOW, sandboxed=False)  # a test stand-in: no sandbox needed
class StandInShipmentWorkflow:
    """A parcel that relays each carrier status to its fulfilment."""

    def __init__(self) -> None:
        self._updates: list[ShipmentProgress] = []

    @workflow.signal(name=CARRIER_SIGNAL)
    def carrier(self, progress: ShipmentProgress) -> None:
        self._updates.append(progress)

    @workflow.run
    async def run(self, input: ShipmentInput) -> str:
        parent = workflow.info().parent
        assert parent is not None, "a parcel is its fulfilment's child"
        fulfilment = workflow.get_external_workflow_handle(parent.workflow_id)
        while True:
            await workflow.wait_condition(lambda: bool(self._updates))
            news = self._updates.pop(0)
            await fulfilment.signal(SHIPMENT_PROGRESS_SIGNAL, news)
            if news.status in FINAL:
                return str(news.status)


@dataclass
class Fulfilment:
    order_id: str
    fail: dict[str, ApplicationError] = field(default_factory=dict)
    # An activity's first N attempts fail with a retryable error (after doing their work:
    # the answer is what is lost).
    flaky: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    shipments: list[str] = field(default_factory=list)
    # The activities that wait for their Block before they answer.
    held: dict[str, Block] = field(default_factory=dict)
    # The parcels as the database has them (made by create_shipment; a test moves them
    # as the real parcel's steps would): a repeated ``open`` answers them, as the
    # service does.
    stored: dict[str, ShipmentState] = field(default_factory=dict)
    # The fulfilment's stored hold and cancel, which a repeated ``open`` answers too.
    stored_hold: str | None = None
    stored_cancelled: bool = False
    # The holds placed (each emails the warehouse), and the keys of the keyed ones.
    holds_placed: int = 0
    hold_keys: set[str] = field(default_factory=set)

    @property
    def fulfillment_id(self) -> str:
        return f"ful_{self.order_id}"

    @property
    def ran(self) -> list[str]:
        return [
            f"{name}:{input['template']}" if name == "email.send" else name
            for name, input in self.calls
        ]

    def inputs(self, name: str) -> list[dict[str, Any]]:
        return [input for called, input in self.calls if called == name]


class FulfillmentStandIns:
    def __init__(self) -> None:
        self.fulfilments: dict[str, Fulfilment] = {}

    def fulfilment(self, **fail: ApplicationError) -> Fulfilment:
        """A fresh order's fulfilment; ``fail`` maps an activity (``open``, ``cancel``…,
        dots as underscores) to the error it raises."""
        order_id = f"ord_ful_{uuid4().hex[:10]}"
        script = Fulfilment(order_id, {k.replace("_", ".", 1): v for k, v in fail.items()})
        self.fulfilments[order_id] = script
        return script

    async def _of(self, name: str, input: Any) -> Fulfilment:
        data = input.model_dump(mode="json")
        key = data.get("order_id") or data.get("fulfillment_id", "").removeprefix("ful_")
        script = self.fulfilments[key]
        script.calls.append((name, data))
        held = script.held.get(name)
        if held is not None:
            await held.wait()
        error = script.fail.get(name)
        if error is not None:
            raise error
        if script.flaky.get(name, 0) > 0:
            script.flaky[name] -= 1
            raise ApplicationError(f"{name}: the answer was lost", type="TransientError")
        return script

    @activity.defn(name=OPEN)
    async def open(self, input: FulfillmentInput) -> FulfillmentOpened:
        script = await self._of(OPEN, input)
        again = script.ran.count(OPEN) > 1
        return FulfillmentOpened(
            shipments=[s.model_copy(deep=True) for s in script.stored.values()] if again else [],
            hold_reason=script.stored_hold if again else None,
            fulfillment_id=script.fulfillment_id,
            order_id=script.order_id,
            status=(
                FulfillmentStatus.CANCELLED
                if again and script.stored_cancelled
                else FulfillmentStatus.OPEN
            ),
            lines=LINES,
            user_id="usr_standin",
            email="ada@example.com",
            name="Ada",
            total=3399,
            currency="USD",
        )

    @activity.defn(name=CREATE)
    async def create_shipment(self, input: NewShipment) -> ShipmentCreated:
        script = await self._of(CREATE, input)
        script.shipments.append(input.shipment_id)
        # Asked again for a parcel it has, it answers the parcel as it is (as the service).
        stored = script.stored.setdefault(
            input.shipment_id,
            ShipmentState(
                shipment_id=input.shipment_id, status=ShipmentStatus.PENDING, lines=input.lines
            ),
        )
        return ShipmentCreated(
            shipment_id=input.shipment_id,
            status=stored.status,
            lines=input.lines,
            fulfillment_status=FulfillmentStatus.IN_PROGRESS,
        )

    @activity.defn(name=HOLD)
    async def hold(self, input: FulfillmentHoldInput) -> FulfillmentChange:
        script = await self._of(HOLD, input)
        if input.key is not None:
            if input.key in script.hold_keys:  # held once for it already (as the service)
                return FulfillmentChange(status=FulfillmentStatus.SHIPPED, changed=False)
            script.hold_keys.add(input.key)
        script.holds_placed += 1
        return FulfillmentChange(status=FulfillmentStatus.ON_HOLD, changed=True)

    @activity.defn(name=RELEASE)
    async def release(self, input: FulfillmentRef) -> FulfillmentChange:
        await self._of(RELEASE, input)
        return FulfillmentChange(status=FulfillmentStatus.IN_PROGRESS, changed=True)

    @activity.defn(name=CANCEL)
    async def cancel(self, input: FulfillmentCancelInput) -> FulfillmentCancelled:
        script = await self._of(CANCEL, input)
        return FulfillmentCancelled(
            cancelled_shipments=script.shipments, status=FulfillmentStatus.CANCELLED
        )

    @activity.defn(name=RESTOCK)
    async def release_stock(self, input: dict[str, Any]) -> int:
        self._raw(RESTOCK, input)
        return 2

    @activity.defn(name=REFUND)
    async def void_or_refund(self, input: dict[str, Any]) -> str:
        held = self._raw(REFUND, input).held.get(REFUND)
        if held is not None:
            await held.wait()
        return "refunded"

    @activity.defn(name=CLOSE)
    async def close(self, input: dict[str, Any]) -> bool:
        self._raw(CLOSE, input)
        return True

    @activity.defn(name="email.send")
    async def send_email(self, input: dict[str, Any]) -> SendEmailResult:
        self._raw("email.send", input)
        return SendEmailResult(
            message_id="msg_standin", provider_message_id=None, already_sent=False
        )

    def _raw(self, name: str, input: dict[str, Any]) -> Fulfilment:
        order_id = input.get("order_id") or input["context"]["order_id"]
        script = self.fulfilments[order_id]
        script.calls.append((name, input))
        return script

    @asynccontextmanager
    async def running(
        self, client: Client, interceptors: Sequence[Interceptor] = ()
    ) -> AsyncIterator[FulfillmentStandIns]:
        """The stand-ins' workers; ``interceptors`` on the ``orders`` one (the workflows')."""
        async with AsyncExitStack() as stack:
            queues: list[tuple[TaskQueue, Sequence[type], Sequence[Callable[..., Any]]]] = [
                (
                    TaskQueue.ORDERS,
                    [FulfillmentWorkflow, StandInShipmentWorkflow],
                    [
                        self.open,
                        self.create_shipment,
                        self.hold,
                        self.release,
                        self.cancel,
                        self.release_stock,
                        self.close,
                    ],
                ),
                (TaskQueue.PAYMENTS, [], [self.void_or_refund]),
                (TaskQueue.NOTIFICATIONS, [], [self.send_email]),
            ]
            for queue, workflows, activities in queues:
                await stack.enter_async_context(
                    suite_worker(
                        client,
                        task_queue=str(queue),
                        workflows=workflows,
                        activities=activities,
                        interceptors=interceptors if queue is TaskQueue.ORDERS else (),
                    )
                )
            yield self


async def start_fulfilment(
    client: Client, order_id: str, *, task_timeout: timedelta | None = None
) -> WorkflowHandle[FulfillmentWorkflow, FulfillmentView]:
    return await client.start_workflow(
        FulfillmentWorkflow.run,
        FulfillmentInput(order_id=order_id, priority=40, priority_level="high"),
        id=fulfillment_workflow_id(order_id),
        task_queue=str(TaskQueue.ORDERS),
        task_timeout=task_timeout,
    )


async def carrier(client: Client, shipment_id: str, status: ShipmentStatus, **extra: Any) -> None:
    """The parcel hears from its carrier (and tells its fulfilment)."""
    await client.get_workflow_handle(shipment_workflow_id(shipment_id)).signal(
        CARRIER_SIGNAL, ShipmentProgress(shipment_id=shipment_id, status=status, **extra)
    )


async def eventually(check: Any, seconds: float = 5.0) -> None:
    """Until ``check()`` (an async predicate) holds; an AssertionError after ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{check} did not hold within {seconds} s")
