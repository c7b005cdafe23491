"""``retry_label`` during a rolling deploy: a worker of the release before named
corrections (its handler takes no argument) receiving the signal as this release's API
and relay send it (``RetryLabel``), and what temporalio 1.35 does with a signal sent more
arguments than its handler takes (README, *Changing the workflow safely*).

A worker of this release receiving the argument-less signal an older API owed is
``test_shipment_workflow.test_a_refused_label_holds_the_fulfilment_until_staff_retry``; a
parcel the older worker served replaying on this release is the recorded history
``shipment_correction_repeated_on_an_older_worker`` (``test_replay.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from core.ids import new_id
from temporal.clients.shipments import ShipmentWorkflows
from temporal.clients.starts import start_row
from tests.fulfillment.helpers import eventually
from workflows.types.fulfillment import RETRY_LABEL_SIGNAL, SHIPMENT_WORKFLOW, RetryLabel


@workflow.defn(name=SHIPMENT_WORKFLOW, sandboxed=False)
class OlderRelease:
    """The parcel's ``retry_label`` as the release before had it: no argument. The run
    ends once it has acted ``wanted`` times."""

    def __init__(self) -> None:
        self._retries = 0

    @workflow.run
    async def run(self, wanted: int) -> int:
        await workflow.wait_condition(lambda: self._retries >= wanted)
        return self._retries

    @workflow.signal(name=RETRY_LABEL_SIGNAL)
    def retry_label(self) -> None:
        self._retries += 1


@workflow.defn(name="OneArgumentSignal", sandboxed=False)
class OneArgument:
    """A handler taking one argument, for a signal sent two."""

    def __init__(self) -> None:
        self._got: list[RetryLabel] = []

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: bool(self._got))
        return len(self._got)

    @workflow.signal(name=RETRY_LABEL_SIGNAL)
    def retry_label(self, retry: RetryLabel) -> None:
        self._got.append(retry)


@pytest.fixture
async def queue(temporal_client: Client) -> AsyncIterator[str]:
    name = f"rolling-{new_id('shp')}"
    async with Worker(temporal_client, task_queue=name, workflows=[OlderRelease, OneArgument]):
        yield name


async def history_once_decided(handle: WorkflowHandle[Any, int]) -> set[EventType.ValueType]:
    """The kinds of event in the run's history once it has completed or a workflow task
    has failed."""
    ended = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    }

    async def kinds() -> set[EventType.ValueType] | None:
        seen = {event.event_type async for event in handle.fetch_history_events()}
        return seen if seen & ended else None

    found: set[EventType.ValueType] = await eventually(kinds, "the run completed or failed")
    return found


async def test_an_older_handler_acts_on_each_named_correction_without_its_argument(
    temporal_client: Client, queue: str, db_session: AsyncSession
) -> None:
    """The correction's owed signal, sent as the API and the relay send it (its row,
    ``start_row``), twice (the relay after a lost answer): the older handler is called
    without the argument each time (temporalio decodes a signal's payloads against the
    handler's parameters; with none, the extra payload is dropped, no warning), its task
    never fails, and it acts on the repeat too, as that release always did. So a parcel
    it served has the repeat's label in its history, and this release must replay it
    (the patch ``retry-label-once-per-correction``)."""
    sid = new_id("shp")
    handle = await temporal_client.start_workflow(
        OlderRelease.run, 2, id=f"shipment-{sid}", task_queue=queue
    )
    row = await ShipmentWorkflows.request_retry_label(db_session, sid, "corr_1")
    await start_row(temporal_client, row)
    await start_row(temporal_client, row)
    kinds = await history_once_decided(handle)
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
    assert await handle.result() == 2


async def test_a_signal_sent_more_arguments_than_its_handler_takes_fails_the_task(
    temporal_client: Client, queue: str
) -> None:
    """The rule's other half: a handler that takes arguments, sent more than it takes, is
    called with all of them; the TypeError fails the workflow task, which Temporal hands
    out again until a worker that can take it does (on a fleet rolled back, never)."""
    handle = await temporal_client.start_workflow(
        OneArgument.run, id=f"one-argument-{new_id('shp')}", task_queue=queue
    )
    await handle.signal(
        RETRY_LABEL_SIGNAL,
        args=[RetryLabel(correction_id="corr_1"), RetryLabel(correction_id="corr_2")],
    )
    kinds = await history_once_decided(handle)
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED not in kinds
    failures = [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert "takes 2 positional arguments but 3 were given" in failures[0]
    await handle.terminate("the signal's task cannot succeed")
