"""Stand-in activities for ``ReturnWorkflow``, registered under the real activity names on
the real task queue, shared by its tests and the history recorder.

Each records its call per return; their results are the real result types. A return id
in ``label_refusals`` has its first label refused by the carrier (non-retryable); one in
``refund_refusals`` has its refund refused by Stripe (``payment_not_refundable``: no
longer that much to refund, non-retryable); one in ``labels_in_use`` has its label
scanned by the carrier when the ship-by time passes (the cancel's void refused,
``label_in_use``, non-retryable). The read (``returns.read``) answers the return as the
stand-ins keep it and counts in ``reads``, not in ``ran``: it changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.returns import ReturnReason, ReturnStatus
from temporal.queues import TaskQueue
from tests.conftest import start_dev_server
from tests.stack import suite_worker
from tests.workflows.order_standins import Block
from workflows.returns import ReturnWorkflow
from workflows.types.fulfillment import return_workflow_id
from workflows.types.returns import (
    CANCEL_ACTIVITY,
    CLOSE_ACTIVITY,
    DECLINE_ACTIVITY,
    ISSUE_LABEL_ACTIVITY,
    LABEL_IN_USE,
    READ_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
    REFUND_NOT_REFUNDABLE,
    ReceivedLine,
    ReceiveRequest,
    ReturnInput,
    ReturnLineRef,
    ReturnView,
    StoredReturn,
)

# The stand-in refunds 1000 minor units per unit received, damaged or not.
UNIT_REFUND = 1000
SHIP_BY_SECONDS = 14 * 86400.0
# Three units back, one damaged: 3 * UNIT_REFUND refunded.
RECEIPT = ReceiveRequest(
    lines=[
        ReceivedLine(return_line_id="rline_a", received_quantity=1, damaged_quantity=1),
        ReceivedLine(return_line_id="rline_b", received_quantity=1, damaged_quantity=0),
    ],
    staff_id="usr_staff",
)
RECEIVED_OR_LATER = frozenset({ReturnStatus.RECEIVED, ReturnStatus.REFUNDED, ReturnStatus.CLOSED})
# Longer than any run of the stand-ins takes: a run waiting for what its row already has
# never ends, and the test fails instead.
ENDS_WITHIN = 30.0


class ReturnStandIns:
    def __init__(self) -> None:
        self.ran: dict[str, list[str]] = defaultdict(list)
        self.inputs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.label_refusals: set[str] = set()
        self.refund_refusals: set[str] = set()
        self.labels_in_use: set[str] = set()
        # Steps held until released, per (activity name, return id).
        self.holds: dict[tuple[str, str], asyncio.Event] = {}
        # The return's row as the real steps leave it: its status and refund amount (a
        # step asked again answers from them, as the services do).
        self.stored: dict[str, ReturnStatus] = {}
        self.amounts: dict[str, int] = {}
        # Return ids whose refund fails for now (Stripe away: retried).
        self.stripe_away: set[str] = set()
        # The approved return's ship-by time, from the server's clock (the time-skipping
        # server's, which the workflow's ``now()`` is), as the real step stores it.
        self.ship_bys: dict[str, datetime] = {}
        self.reads: dict[str, int] = defaultdict(int)
        # Reads held until released, per return id.
        self.held_reads: dict[str, Block] = {}

    def _record(self, name: str, input: dict[str, Any]) -> str:
        return_id = str(input["return_id"])
        self.ran[return_id].append(name)
        self.inputs[return_id].append(input)
        return return_id

    async def _held(self, name: str, return_id: str) -> None:
        hold = self.holds.get((name, return_id))
        if hold is not None:
            await hold.wait()

    @activity.defn(name=ISSUE_LABEL_ACTIVITY)
    async def issue_label(self, input: dict[str, Any]) -> ReturnStatus:
        return_id = self._record(ISSUE_LABEL_ACTIVITY, input)
        await self._held(ISSUE_LABEL_ACTIVITY, return_id)
        if return_id in self.label_refusals:
            self.label_refusals.discard(return_id)
            raise ApplicationError(
                "the carrier refused the address", type="shipping_rejected", non_retryable=True
            )
        if self.stored.get(return_id, ReturnStatus.REQUESTED) != ReturnStatus.REQUESTED:
            return self.stored[return_id]  # decided already (as the service answers)
        self.stored[return_id] = ReturnStatus.APPROVED
        self.ship_bys[return_id] = activity.info().current_attempt_scheduled_time + timedelta(
            seconds=float(input["ship_by_seconds"])
        )
        return ReturnStatus.APPROVED

    @activity.defn(name=DECLINE_ACTIVITY)
    async def decline(self, input: dict[str, Any]) -> ReturnStatus:
        self.stored[self._record(DECLINE_ACTIVITY, input)] = ReturnStatus.DECLINED
        return ReturnStatus.DECLINED

    @activity.defn(name=CANCEL_ACTIVITY)
    async def cancel(self, input: dict[str, Any]) -> ReturnStatus:
        return_id = self._record(CANCEL_ACTIVITY, input)
        stored = self.stored.get(return_id, ReturnStatus.APPROVED)
        if stored != ReturnStatus.APPROVED:
            return stored  # moved on: nothing to cancel (as the service answers)
        if return_id in self.labels_in_use:
            raise ApplicationError(
                "the carrier has scanned the return label", type=LABEL_IN_USE, non_retryable=True
            )
        self.stored[return_id] = ReturnStatus.CANCELLED
        return ReturnStatus.CANCELLED

    @activity.defn(name=RECEIVE_ACTIVITY)
    async def receive(self, input: dict[str, Any]) -> int:
        return_id = self._record(RECEIVE_ACTIVITY, input)
        await self._held(RECEIVE_ACTIVITY, return_id)
        if self.stored.get(return_id) in RECEIVED_OR_LATER:
            return self.amounts[return_id]  # recorded already: its amount
        self.stored[return_id] = ReturnStatus.RECEIVED
        self.amounts[return_id] = UNIT_REFUND * sum(
            int(ln["received_quantity"]) + int(ln["damaged_quantity"]) for ln in input["lines"]
        )
        return self.amounts[return_id]

    @activity.defn(name=REFUND_ACTIVITY)
    async def refund(self, input: dict[str, Any]) -> str:
        return_id = self._record(REFUND_ACTIVITY, input)
        await self._held(REFUND_ACTIVITY, return_id)
        if return_id in self.stripe_away:
            raise ApplicationError("Stripe is away", type="DependencyUnavailable")
        if return_id in self.refund_refusals:
            raise ApplicationError(
                "Stripe refused the refund: at most 500 can still be refunded",
                {"refundable": 500},
                type=REFUND_NOT_REFUNDABLE,
                non_retryable=True,
            )
        self.stored[return_id] = ReturnStatus.REFUNDED
        return "re_standin"

    @activity.defn(name=READ_ACTIVITY)
    async def read(self, input: dict[str, Any]) -> StoredReturn:
        return_id = str(input["return_id"])
        self.reads[return_id] += 1
        held = self.held_reads.get(return_id)
        if held is not None:
            await held.wait()
        status = self.stored.get(return_id, ReturnStatus.REQUESTED)
        return StoredReturn(
            status=status,
            label_issued=return_id in self.ship_bys,
            ship_by=self.ship_bys.get(return_id),
            refund_amount=self.amounts.get(return_id),
        )

    def approved(self, return_id: str, *, ship_by: datetime) -> None:
        """The return's row approved where its run does not see it."""
        self.stored[return_id] = ReturnStatus.APPROVED
        self.ship_bys[return_id] = ship_by

    @activity.defn(name=CLOSE_ACTIVITY)
    async def close(self, input: dict[str, Any]) -> ReturnStatus:
        self.stored[self._record(CLOSE_ACTIVITY, input)] = ReturnStatus.CLOSED
        return ReturnStatus.CLOSED

    async def until_ran(self, return_id: str, name: str, *, tries: int = 300) -> None:
        """Until the stand-in ``name`` has run for the return, for a few seconds at most."""
        for _ in range(tries):
            if name in self.ran[return_id]:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{return_id}: {name} never ran; ran {self.ran[return_id]}")

    @asynccontextmanager
    async def on_dev_server(self, **options: Any) -> AsyncIterator[Client]:
        """A dev server (one that can reset a run) with these stand-ins' worker
        (``options`` as ``worker``'s); held reads are released before it stops."""
        env = await start_dev_server()
        try:
            async with self.worker(env.client, **options):
                yield env.client
        finally:
            for held in self.held_reads.values():
                held.release()
            await env.shutdown()

    def worker(self, client: Client, **options: Any) -> Worker:
        return suite_worker(
            client,
            **options,
            task_queue=str(TaskQueue.ORDERS),
            workflows=[ReturnWorkflow],
            activities=self.activities(),
        )

    def activities(self) -> list[Callable[..., Any]]:
        """Every step of the return's, as these stand-ins take it."""
        return [
            self.issue_label,
            self.decline,
            self.cancel,
            self.receive,
            self.refund,
            self.close,
            self.read,
        ]


def return_input(
    return_id: str | None = None,
    *,
    reason: ReturnReason = ReturnReason.NO_LONGER_NEEDED,
    auto_approve: bool = False,
) -> ReturnInput:
    """A return of two lines: ``rline_a`` (2 units) and ``rline_b`` (1 unit)."""
    return ReturnInput(
        return_id=return_id or f"ret_standin_{uuid4().hex[:10]}",
        order_id="ord_standin_returned",
        user_id="usr_standin",
        reason=reason,
        lines=[
            ReturnLineRef(return_line_id="rline_a", quantity=2),
            ReturnLineRef(return_line_id="rline_b", quantity=1),
        ],
        auto_approve=auto_approve,
        ship_by_seconds=SHIP_BY_SECONDS,
    )


async def start_return(
    client: Client, input: ReturnInput, *, task_timeout: timedelta | None = None
) -> WorkflowHandle[Any, ReturnView]:
    return await client.start_workflow(
        ReturnWorkflow.run,
        input,
        id=return_workflow_id(input.return_id),
        task_queue=str(TaskQueue.ORDERS),
        task_timeout=task_timeout,
    )


async def until_status(
    handle: WorkflowHandle[Any, ReturnView], status: ReturnStatus, *, tries: int = 100
) -> None:
    """Until the run answers ``status`` (a handle without a run id asks the latest run,
    a reset one once it is reset), for a few seconds at most."""
    seen: ReturnStatus | None = None
    for _ in range(tries):
        seen = (await handle.query(ReturnWorkflow.status)).status
        if seen is status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never {status}; last {seen}")


async def until_approved(handle: WorkflowHandle[Any, ReturnView]) -> None:
    """Until the (auto-approved) return's label is issued, for a few seconds at most."""
    await until_status(handle, ReturnStatus.APPROVED)


async def ended(handle: WorkflowHandle[Any, ReturnView]) -> ReturnView:
    """The run's result, within ``ENDS_WITHIN``."""
    return await asyncio.wait_for(handle.result(), ENDS_WITHIN)
