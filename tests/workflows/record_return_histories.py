"""Record ``ReturnWorkflow``'s histories for ``test_replay.py`` (see
``record_histories.py`` for when to record; the same rules hold):

    .venv/bin/python -m tests.workflows.record_return_histories [NAME ...] [--overwrite]

They run on their own time-skipping server, because the return stand-ins poll the
``orders`` queue that ``OrderWorkflow``'s stand-ins poll in the main recorder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.stack.process import find_binary
from models.returns import ReturnReason, ReturnStatus
from temporal.queues import TaskQueue
from temporal.search_attributes import SEARCH_ATTRIBUTES
from tests.workflows.record_histories import HISTORIES, recorder_main
from tests.workflows.return_standins import (
    SHIP_BY_SECONDS,
    ReturnStandIns,
    return_input,
    start_return,
    until_approved,
)
from workflows.returns import ReturnWorkflow
from workflows.types.fulfillment import return_workflow_id
from workflows.types.returns import (
    ApproveRequest,
    DeclineRequest,
    ReceivedLine,
    ReceiveRequest,
)

Recording = Callable[[WorkflowEnvironment], Awaitable[str]]
STANDINS = ReturnStandIns()
# Stripe refuses this return's refund (the stand-ins' ``refund_refusals``).
REFUND_REFUSED_ID = "ret_recorded_refund_refused"
# The carrier scans this return's label as the ship-by time passes (``labels_in_use``).
SENT_LATE_ID = "ret_recorded_sent_late"
RECEIPT = ReceiveRequest(
    lines=[ReceivedLine(return_line_id="rline_a", received_quantity=1, damaged_quantity=1)],
    staff_id="usr_recorded_staff",
)


async def refunded(env: WorkflowEnvironment, return_id: str = "ret_recorded_refunded") -> str:
    handle = await start_return(env.client, return_input(return_id))
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status == ReturnStatus.CLOSED
    return handle.id


async def auto_approved(env: WorkflowEnvironment) -> str:
    input = return_input("ret_recorded_auto", reason=ReturnReason.DAMAGED, auto_approve=True)
    handle = await start_return(env.client, input)
    await until_approved(handle)
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status == ReturnStatus.CLOSED
    return handle.id


# Since "return-approval-before-run-kept": staff's approval comes with the start of a
# return whose reason approves itself, and stands.
async def staff_approved_with_the_start(env: WorkflowEnvironment) -> str:
    input = return_input("ret_recorded_approved_with_start", auto_approve=True)
    start = WithStartWorkflowOperation(
        ReturnWorkflow.run,
        input,
        id=return_workflow_id(input.return_id),
        task_queue=str(TaskQueue.ORDERS),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    await env.client.execute_update_with_start_workflow(
        ReturnWorkflow.approve,
        ApproveRequest(staff_id="usr_staff"),
        start_workflow_operation=start,
    )
    handle = await start.workflow_handle()
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status == ReturnStatus.CLOSED
    return handle.id


async def declined(env: WorkflowEnvironment) -> str:
    handle = await start_return(env.client, return_input("ret_recorded_declined"))
    await handle.execute_update(ReturnWorkflow.decline, DeclineRequest(reason="worn"))
    assert (await handle.result()).status == ReturnStatus.DECLINED
    return handle.id


async def not_sent_back(env: WorkflowEnvironment) -> str:
    handle = await start_return(env.client, return_input("ret_recorded_cancelled"))
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    await env.sleep(timedelta(seconds=SHIP_BY_SECONDS / 2))
    assert (await handle.result()).status == ReturnStatus.CANCELLED
    return handle.id


async def refund_refused(env: WorkflowEnvironment) -> str:
    handle = await start_return(env.client, return_input(REFUND_REFUSED_ID))
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    try:
        await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    except WorkflowUpdateFailedError:
        pass
    else:
        raise AssertionError("the receipt was not refused")
    try:
        await handle.result()
    except WorkflowFailureError:
        return handle.id
    raise AssertionError("the workflow did not fail")


# Since "return-late-parcel-awaited": the cancel finds the label scanned (the goods are
# on their way); the receipt is refused while the cancel runs, taken once it has failed.
async def sent_late(env: WorkflowEnvironment) -> str:
    handle = await start_return(env.client, return_input(SENT_LATE_ID))
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    await env.sleep(timedelta(seconds=SHIP_BY_SECONDS + 60))
    for _ in range(100):
        try:
            await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
            break
        except WorkflowUpdateFailedError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the late receipt was never taken")
    assert (await handle.result()).status == ReturnStatus.CLOSED
    return handle.id


# Since "return-deadline-takes-stored-status": the receipt recorded where the run did not
# see it (a reset run; ``record_reset_histories.py`` records a reset), found by the
# deadline's cancel: refunded and closed.
async def received_unseen_at_the_deadline(env: WorkflowEnvironment) -> str:
    input = return_input("ret_recorded_received_unseen")
    handle = await start_return(env.client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    STANDINS.stored[input.return_id] = ReturnStatus.RECEIVED
    STANDINS.amounts[input.return_id] = 2000
    assert (await handle.result()).status == ReturnStatus.CLOSED
    return handle.id


# Since "return-reset-reads-the-return": the run reads the return at its start (and
# where it is reset: ``record_reset_histories.py`` records resets).
async def refunded_reading_the_return(env: WorkflowEnvironment) -> str:
    return await refunded(env, "ret_recorded_reads_the_return")


# Since "return-reset-reads-the-return": the row approved before the run started (a run
# reset to its first task): no approval awaited, the receipt taken.
async def approved_unseen_at_the_start(env: WorkflowEnvironment) -> str:
    input = return_input("ret_recorded_approved_unseen")
    now = await env.get_current_time()
    STANDINS.approved(input.return_id, ship_by=now + timedelta(seconds=SHIP_BY_SECONDS))
    handle = await start_return(env.client, input)
    await until_approved(handle)
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status == ReturnStatus.CLOSED
    return handle.id


RECORDINGS: dict[str, Recording] = {
    "return_refunded": refunded,
    "return_auto_approved": auto_approved,
    "return_declined": declined,
    "return_not_sent_back": not_sent_back,
    "return_refund_refused": refund_refused,
    "return_staff_approved_with_the_start": staff_approved_with_the_start,
    "return_sent_late": sent_late,
    "return_received_unseen_at_the_deadline": received_unseen_at_the_deadline,
    "return_refunded_reading_the_return": refunded_reading_the_return,
    "return_approved_unseen_at_the_start": approved_unseen_at_the_start,
}


async def record(names: list[str], overwrite: bool = False) -> None:
    wanted = [n for n in names if overwrite or not (HISTORIES / f"{n}.json").exists()]
    if not wanted:
        return
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                search_attributes=SEARCH_ATTRIBUTES, namespace=env.client.namespace
            )
        )
        standins = STANDINS
        standins.refund_refusals.add(REFUND_REFUSED_ID)
        standins.labels_in_use.add(SENT_LATE_ID)
        async with standins.worker(env.client):
            for name in wanted:
                workflow_id = await RECORDINGS[name](env)
                history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                (HISTORIES / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}")
    finally:
        await env.shutdown()


def main() -> None:
    recorder_main(
        __doc__ or "", RECORDINGS, lambda names, overwrite: record(names, overwrite=overwrite)
    )


if __name__ == "__main__":
    main()
