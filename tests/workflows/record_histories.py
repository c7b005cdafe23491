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

The recordings themselves are in ``tests/workflows/recordings/``, one module per workflow
family; this script is their list of workflows and their runner.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Collection, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from uuid import uuid4

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cli.stack.process import find_binary
from temporal.search_attributes import SEARCH_ATTRIBUTES
from tests.stack import suite_worker
from tests.workflows.order_standins import OrderStandIns
from tests.workflows.recordings import RECORDINGS, carts, events, maintenance, orders
from tests.workflows.recordings.fulfillment import FULFILMENT_RECORDINGS, FULFILMENTS
from tests.workflows.recordings.shipments import SHIPMENT_RECORDINGS, SHIPMENT_STANDINS
from workflows.carts import CartAbandonmentWorkflow
from workflows.events import EventBatchWorkflow, EventDeliveryWorkflow, EventFanoutWorkflow
from workflows.fulfillment import FulfillmentWorkflow
from workflows.maintenance import AnalyticsRollupWorkflow
from workflows.onboarding import UserOnboardingWorkflow
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipments import ShipmentWorkflow
from workflows.system import StackProbeWorkflow

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


# --- running them -------------------------------------------------------------------------


async def _save(client: Client, workflow_id: str, name: str) -> None:
    """``workflow_id``, or ``id@run`` for one run of a workflow that continued as new."""
    workflow_id, _, run_id = workflow_id.partition("@")
    history = await client.get_workflow_handle(workflow_id, run_id=run_id or None).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


def _workers(client: Client, queue: str) -> list[Worker]:
    standins = OrderStandIns()
    for order_id, plan in orders.SCRIPTS.items():
        standins.script(order_id, plan)
    others = [w for w in WORKFLOWS if w not in (OrderWorkflow, ReturnWorkflow, ShipmentWorkflow)]
    return [
        suite_worker(
            client,
            task_queue=queue,
            workflows=others,
            activities=[
                carts.send_email,
                carts.contact,
                maintenance.probe,
                events.deliver_event,
                events.dead_letter_event,
                maintenance.refresh_rollups,
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
