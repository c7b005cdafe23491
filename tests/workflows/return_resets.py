"""An operator resets a ``ReturnWorkflow`` (``temporal workflow reset``, the UI's Reset):
the scenarios ``test_return_reset.py`` asserts and ``record_reset_histories.py`` records,
on a dev server (the time-skipping server cannot reset a workflow) with the return's
stand-ins (``return_standins.py``), which keep the return's row as the real steps do.

Each resets with Updates not sent again (``--reapply-exclude Update``), where the run
knows least, and returns the workflow's id once the reset run has ended. Since
"return-reset-reads-the-return" the run reads the return where it was reset (and at its
start) and goes on from the stored status; before, it went on from what its history
kept: each scenario fails on that code."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import ResetReapplyExcludeType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage

from models.returns import ReturnStatus
from tests.workflows.fulfillment_resets import (
    completed_tasks,
    patches,
    reset,
    task_that_took_the_update,
)
from tests.workflows.return_standins import (
    RECEIPT,
    UNIT_REFUND,
    ReturnStandIns,
    ended,
    return_input,
    start_return,
    until_status,
)
from workflows.return_patches import RESET_READS_THE_RETURN
from workflows.returns import ReturnWorkflow
from workflows.types.returns import (
    CANCEL_ACTIVITY,
    CLOSE_ACTIVITY,
    ISSUE_LABEL_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
    ApproveRequest,
    ReturnView,
)

Handle = WorkflowHandle[Any, ReturnView]

EXCLUDE_UPDATES = ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE


def latest(client: Client, workflow_id: str) -> Handle:
    """The workflow's current run (the reset run, once it is reset)."""
    return client.get_workflow_handle(workflow_id, result_type=ReturnView)


async def reset_before_the_approval(client: Client, standins: ReturnStandIns) -> str:
    """Staff approved the return (its label bought); an operator resets it to the task
    that took the approval. The reset run reads the return there, approved: it waits
    for no decision, buys no second label, and takes staff's receipt (refused before,
    ``return_not_approved``), refunds and closes."""
    input = return_input()
    rid = input.return_id
    handle = await start_return(client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    took_the_approval = await task_that_took_the_update(client, handle.id)
    await reset(client, handle.id, took_the_approval, EXCLUDE_UPDATES)
    await until_status(latest(client, handle.id), ReturnStatus.APPROVED, tries=300)
    assert standins.reads[rid] == 2  # at the start, and at the reset point
    assert any(RESET_READS_THE_RETURN in p for p in await patches(client, handle.id))

    view = await latest(client, handle.id).execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (view.status, view.refund_amount) == (ReturnStatus.REFUNDED, 3 * UNIT_REFUND)
    done = await ended(latest(client, handle.id))
    assert done.status is ReturnStatus.CLOSED
    assert standins.ran[rid] == [
        ISSUE_LABEL_ACTIVITY,
        RECEIVE_ACTIVITY,
        REFUND_ACTIVITY,
        CLOSE_ACTIVITY,
    ], standins.ran[rid]
    return handle.id


async def reset_before_the_receipt_while_refunding(client: Client, standins: ReturnStandIns) -> str:
    """Approved, received; its refund retrying (Stripe away) when the operator resets
    the return to the task that took staff's receipt. The reset run reads the return
    there, received: it refunds it (the return's key: one refund) and closes it, at once.
    Before, it waited for a receipt until the ship-by time (and, before
    "return-deadline-takes-stored-status", then ended ``cancelled``, never refunded)."""
    input = return_input()
    rid = input.return_id
    standins.stripe_away.add(rid)
    handle = await start_return(client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    await handle.start_update(
        ReturnWorkflow.receive, RECEIPT, wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    await standins.until_ran(rid, REFUND_ACTIVITY)
    assert standins.stored[rid] is ReturnStatus.RECEIVED  # the refund retrying

    took_the_receipt = await task_that_took_the_update(client, handle.id, 1)
    await reset(client, handle.id, took_the_receipt, EXCLUDE_UPDATES)
    standins.stripe_away.discard(rid)
    done = await ended(latest(client, handle.id))
    assert (done.status, done.refund_amount) == (ReturnStatus.CLOSED, 3 * UNIT_REFUND)
    assert standins.stored[rid] is ReturnStatus.CLOSED
    # The reset run: no cancel, no receipt again; refunded, closed.
    assert CANCEL_ACTIVITY not in standins.ran[rid], standins.ran[rid]
    assert standins.ran[rid].count(RECEIVE_ACTIVITY) == 1
    assert standins.ran[rid][-2:] == [REFUND_ACTIVITY, CLOSE_ACTIVITY], standins.ran[rid]
    return handle.id


async def reset_to_the_first_task_once_closed(client: Client, standins: ReturnStandIns) -> str:
    """A return refunded and closed; an operator resets it to its first workflow task.
    Temporal tells the run of it before ``run`` listens: the run reads the return at its
    start, closed, and ends so, doing nothing again. Before, it waited for a decision
    for good."""
    input = return_input()
    rid = input.return_id
    handle = await start_return(client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status is ReturnStatus.CLOSED
    steps = list(standins.ran[rid])

    first_task = (await completed_tasks(client, handle.id))[0]
    await reset(client, handle.id, first_task, EXCLUDE_UPDATES)
    done = await ended(latest(client, handle.id))
    assert (done.status, done.refund_amount) == (ReturnStatus.CLOSED, 3 * UNIT_REFUND)
    assert standins.ran[rid] == steps  # nothing done again
    assert standins.reads[rid] == 2
    return handle.id
