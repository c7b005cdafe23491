"""Stand-ins for ``ShipmentWorkflow``'s activities, and a test-only parent registered as
``FulfillmentWorkflow`` that starts one parcel as its child and keeps every
``shipment_progress`` signal it is sent. Shared by the workflow tests and the history
recorder.

The stand-ins keep each parcel's status as the real service would (the carrier's status
mapped, forward only by ``shipment_can_move``) and record every call, so a test can
assert exactly what the workflow asked for; a parcel's label can be scripted to be
refused by the carrier, and its recording to fail (and be retried) a number of times.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

# Passed through, tests.stack included: the sandbox re-imports this module (ParentStandIn
# runs sandboxed), and a second import of tests.stack's asyncpg there crashed the test
# process (a segmentation fault at its engine's last close).
with workflow.unsafe.imports_passed_through():
    from integrations.shipping.provider import CarrierStatus, TrackerState, TrackingDetail
    from models.fulfillment import ShipmentStatus
    from services.fulfillment.status import shipment_can_move
    from services.fulfillment.tracking import STATUS_OF_CARRIER
    from temporal.queues import TaskQueue
    from temporal.search_attributes import ORDER_ID, SHIPMENT_STATUS
    from tests.stack import suite_worker
    from workflows.shipments import ShipmentWorkflow
    from workflows.types.fulfillment import (
        CARRIER_UPDATE_SIGNAL,
        FULFILLMENT_WORKFLOW,
        RETRY_LABEL_SIGNAL,
        SHIPMENT_PROGRESS_SIGNAL,
        SHIPMENT_WORKFLOW,
        CarrierUpdate,
        RetryLabel,
        ShipmentInput,
        ShipmentProgress,
        fulfillment_workflow_id,
        shipment_workflow_id,
    )
    from workflows.types.shipments import (
        BOOK_LABEL_ACTIVITY,
        MARK_DELAYED_ACTIVITY,
        RECORD_UPDATE_ACTIVITY,
        RECORD_UPDATES_ACTIVITY,
        REFUND_LABEL_ACTIVITY,
        BookedLabel,
        MarkDelayedInput,
        RecordedUpdate,
        RecordedUpdates,
        RecordUpdateInput,
        RecordUpdatesInput,
        ShipmentRef,
        ShipmentView,
    )

BOOK, RECORD, DELAYED, REFUND = (
    BOOK_LABEL_ACTIVITY,
    RECORD_UPDATE_ACTIVITY,
    MARK_DELAYED_ACTIVITY,
    REFUND_LABEL_ACTIVITY,
)
# The carrier's statuses a parcel's tests and recordings move it through.
PRE, TRANSIT, OUT, DELIVERED = (
    CarrierStatus.PRE_TRANSIT,
    CarrierStatus.IN_TRANSIT,
    CarrierStatus.OUT_FOR_DELIVERY,
    CarrierStatus.DELIVERED,
)
PROGRESS_QUERY = "progress"
REFUSED = "the carrier refused the address: street not found"


@workflow.defn(name=FULFILLMENT_WORKFLOW)
class ParentStandIn:
    """Starts the parcel as a child and keeps the progress it is told."""

    def __init__(self) -> None:
        self._progress: list[ShipmentProgress] = []

    @workflow.signal(name=SHIPMENT_PROGRESS_SIGNAL)
    def shipment_progress(self, progress: ShipmentProgress) -> None:
        self._progress.append(progress)

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> list[ShipmentProgress]:
        return self._progress

    @workflow.run
    async def run(self, input: ShipmentInput) -> ShipmentView:
        view: ShipmentView = await workflow.execute_child_workflow(
            SHIPMENT_WORKFLOW,
            input,
            id=shipment_workflow_id(input.shipment_id),
            task_queue=str(TaskQueue.ORDERS),
            result_type=ShipmentView,
            # As FulfillmentWorkflow starts a parcel (since "local-fulfillment-steps").
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SHIPMENT_STATUS, str(ShipmentStatus.PENDING)),
                    SearchAttributePair(ORDER_ID, input.order_id),
                ]
            ),
        )
        return view


# The carrier's clock, unless a test dates its scans: ahead of the test server's, so the
# workflow counts these scans as just now (a carrier's time never starts the stall clock
# later than now) and only the tests of the stall clock depend on the carrier's times.
CARRIER_DAY = datetime(2100, 1, 1, 8, tzinfo=UTC)


def tracker(
    shipment_id: str,
    *statuses: CarrierStatus,
    location: str | None = "Boston, MA",
    last_at: datetime | None = None,
) -> TrackerState:
    """The tracker as the carrier sends it: its whole history so far, the last status
    current. Entries are an hour apart, the last at ``last_at`` (else from a fixed day,
    so that they repeat exactly)."""
    first = CARRIER_DAY if last_at is None else last_at - timedelta(hours=len(statuses) - 1)
    details = [
        TrackingDetail(
            status=s,
            message=f"{s}".replace("_", " ").capitalize(),
            location=location,
            occurred_at=first + timedelta(hours=i),
        )
        for i, s in enumerate(statuses)
    ]
    return TrackerState(
        tracker_id=f"trk_{shipment_id}",
        tracking_code=f"9400{shipment_id}",
        status=statuses[-1],
        shipment_id=f"shp_provider_{shipment_id}",
        details=details,
        updated_at=details[-1].occurred_at,
    )


def update(
    event_id: str, shipment_id: str, *statuses: CarrierStatus, last_at: datetime | None = None
) -> CarrierUpdate:
    return CarrierUpdate(
        event_id=event_id, tracker=tracker(shipment_id, *statuses, last_at=last_at)
    )


class ShipmentStandIns:
    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.status: dict[str, ShipmentStatus] = {}
        self.refusals: dict[str, int] = {}  # shipment id: labels refused before one is sold
        self.latest: dict[str, datetime] = {}  # shipment id: its latest carrier scan
        # Shipment id: the number of updates each record_updates step was given.
        self.batches: dict[str, list[int]] = defaultdict(list)
        # Shipment id: the next record_updates step waits for this to be set.
        self.gates: dict[str, asyncio.Event] = {}
        # Shipment ids whose label the carrier has scanned: a refund is refused (False).
        self.in_use: set[str] = set()
        # Shipment id: record_updates attempts that fail (a database hiccup, retried)
        # before one records.
        self.hiccups: dict[str, int] = {}

    def ran(self, shipment_id: str) -> list[str]:
        return [name for name, _ in self.calls[shipment_id]]

    def inputs(self, shipment_id: str, name: str) -> list[dict[str, Any]]:
        return [i for n, i in self.calls[shipment_id] if n == name]

    async def called(self, shipment_id: str, name: str, times: int = 1) -> None:
        """Wait (a few real seconds at most) until ``name`` ran ``times`` times."""
        for _ in range(500):
            if self.ran(shipment_id).count(name) >= times:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{name} ran {self.ran(shipment_id)}, not {times} times")

    async def cancel_with_update(
        self, handle: WorkflowHandle[Any, ShipmentView], sid: str, news: CarrierUpdate
    ) -> None:
        """Cancel the parcel and send it ``news`` so that both reach it in one workflow
        task: both are sent while a pre-transit scan's local step (no move) holds the
        previous task open, and reach the parcel once it is let go."""
        gate = self.gates[sid] = asyncio.Event()
        await handle.signal(CARRIER_UPDATE_SIGNAL, update(f"{news.event_id}-pre", sid, PRE))
        for _ in range(500):
            if self.batches[sid]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the pre-transit scan's step never began")
        await handle.cancel()
        await handle.signal(CARRIER_UPDATE_SIGNAL, news)
        gate.set()

    @activity.defn(name=BOOK_LABEL_ACTIVITY)
    async def book_label(self, input: ShipmentRef) -> BookedLabel:
        sid = input.shipment_id
        self.calls[sid].append((BOOK, input.model_dump(mode="json")))
        if self.refusals.get(sid, 0) > 0:
            self.refusals[sid] -= 1
            raise ApplicationError(REFUSED, type="shipping_rejected", non_retryable=True)
        current = self.status.get(sid, ShipmentStatus.PENDING)
        if shipment_can_move(current, ShipmentStatus.LABEL_PURCHASED):
            self.status[sid] = ShipmentStatus.LABEL_PURCHASED
        return BookedLabel(
            shipment_id=sid,
            status=self.status[sid],
            carrier="USPS",
            tracking_code=f"9400{sid}",
            tracking_url=f"https://tools.usps.com/go/TrackConfirmAction?tLabels=9400{sid}",
        )

    @activity.defn(name=RECORD_UPDATE_ACTIVITY)
    async def record_update(self, input: RecordUpdateInput) -> RecordedUpdate:
        return self._record(input)

    @activity.defn(name=RECORD_UPDATES_ACTIVITY)
    async def record_updates(self, input: RecordUpdatesInput) -> RecordedUpdates:
        """As the service answers: each update recorded as ``record_update`` would, one
        after the other (each counts as a RECORD call; ``batches`` keeps the steps)."""
        sid = input.shipment_id
        if self.hiccups.get(sid, 0) > 0:
            self.hiccups[sid] -= 1
            raise ApplicationError("the database is restarting")
        self.batches[sid].append(len(input.trackers))
        if sid in self.gates:
            await self.gates.pop(sid).wait()
        return RecordedUpdates(
            updates=[
                self._record(RecordUpdateInput(shipment_id=sid, tracker=t)) for t in input.trackers
            ]
        )

    def _record(self, input: RecordUpdateInput) -> RecordedUpdate:
        sid = input.shipment_id
        self.calls[sid].append((RECORD, input.model_dump(mode="json")))
        current = self.status.get(sid, ShipmentStatus.PENDING)
        target = STATUS_OF_CARRIER.get(input.tracker.status)
        moved = target is not None and shipment_can_move(current, target)
        if moved and target is not None:
            self.status[sid] = target
        details = input.tracker.details
        # As the service answers: the latest entry of all the parcel's recorded ones.
        latest = [self.latest[sid]] if sid in self.latest else []
        latest += [d.occurred_at for d in details]
        if latest:
            self.latest[sid] = max(latest)
        return RecordedUpdate(
            status=self.status.get(sid, current),
            moved=moved,
            new_events=len(details),
            detail=details[-1].message if details else None,
            last_event_at=self.latest.get(sid),
        )

    @activity.defn(name=MARK_DELAYED_ACTIVITY)
    async def mark_delayed(self, input: MarkDelayedInput) -> bool:
        self.calls[input.shipment_id].append((DELAYED, input.model_dump(mode="json")))
        return True

    @activity.defn(name=REFUND_LABEL_ACTIVITY)
    async def refund_label(self, input: ShipmentRef) -> bool:
        sid = input.shipment_id
        self.calls[sid].append((REFUND, input.model_dump(mode="json")))
        if self.status.get(sid) is not ShipmentStatus.LABEL_PURCHASED or sid in self.in_use:
            return False
        self.status[sid] = ShipmentStatus.CANCELLED
        return True

    def worker(self, client: Client) -> Worker:
        return suite_worker(
            client,
            task_queue=str(TaskQueue.ORDERS),
            workflows=[ShipmentWorkflow, ParentStandIn],
            activities=self.activities(),
        )

    def activities(self) -> list[Callable[..., Any]]:
        """Every step of the parcel's, as these stand-ins take it."""
        return [
            self.book_label,
            self.record_update,
            self.record_updates,
            self.mark_delayed,
            self.refund_label,
        ]

    @asynccontextmanager
    async def running(self, client: Client) -> AsyncIterator[ShipmentStandIns]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.worker(client))
            yield self


def parcel(shipment_id: str, **fields: Any) -> ShipmentInput:
    return ShipmentInput(
        shipment_id=shipment_id, order_id=f"ord_{shipment_id}", fulfillment_id="ful_1", **fields
    )


async def start_under_parent(
    client: Client, input: ShipmentInput
) -> tuple[WorkflowHandle[Any, ShipmentView], WorkflowHandle[Any, Any]]:
    """The parcel under the stand-in parent: (the parcel's handle, the parent's)."""
    parent = await client.start_workflow(
        FULFILLMENT_WORKFLOW,
        input,
        id=fulfillment_workflow_id(input.order_id),
        task_queue=str(TaskQueue.ORDERS),
    )
    child = client.get_workflow_handle(
        shipment_workflow_id(input.shipment_id), result_type=ShipmentView
    )
    return child, parent


async def progress(parent: WorkflowHandle[Any, Any]) -> list[ShipmentProgress]:
    told: list[ShipmentProgress] = await parent.query(
        PROGRESS_QUERY, result_type=list[ShipmentProgress]
    )
    return told


async def view(handle: WorkflowHandle[Any, ShipmentView]) -> ShipmentView:
    """The ``status`` query (by name, as the typed client asks)."""
    answer: ShipmentView = await handle.query("status", result_type=ShipmentView)
    return answer


async def until(
    handle: WorkflowHandle[Any, ShipmentView], ok: Callable[[ShipmentView], bool]
) -> ShipmentView:
    """The parcel's view once ``ok`` holds (a few real seconds at most); a parcel its
    parent has not started yet counts as not there yet."""
    seen: ShipmentView | None = None
    for _ in range(500):
        try:
            seen = await view(handle)
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        else:
            if ok(seen):
                return seen
        await asyncio.sleep(0.01)
    raise AssertionError(f"the parcel never got there: {seen}")


async def refused_again_then_sent_again(
    standins: ShipmentStandIns, child: WorkflowHandle[Any, ShipmentView], sid: str
) -> None:
    """A parcel whose label the carrier refuses twice: staff's correction ``corr_1``
    books it again, refused too, and ``corr_1``'s signal is sent again (the relay after
    a lost answer) while the parcel waits for staff."""
    await until(child, lambda v: v.awaiting_retry)
    await child.signal(RETRY_LABEL_SIGNAL, RetryLabel(correction_id="corr_1"))
    await standins.called(sid, BOOK_LABEL_ACTIVITY, 2)
    await until(child, lambda v: v.awaiting_retry)
    await child.signal(RETRY_LABEL_SIGNAL, RetryLabel(correction_id="corr_1"))
