"""An operator resets a ``ReturnWorkflow`` (``temporal workflow reset``, the UI's Reset):
the scenario ``test_return_reset.py`` asserts and ``record_reset_histories.py`` records,
on a dev server (the time-skipping server cannot reset a workflow) with the return's
stand-ins (``return_standins.py``), which keep the return's row as the real steps do."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import ResetReapplyExcludeType
from temporalio.client import Client, WorkflowUpdateStage

from models.returns import ReturnStatus
from tests.workflows.fulfillment_resets import reset, task_that_took_the_update
from tests.workflows.return_standins import (
    RECEIPT,
    UNIT_REFUND,
    ReturnStandIns,
    return_input,
    start_return,
)
from workflows.returns import ReturnWorkflow
from workflows.types.returns import (
    CANCEL_ACTIVITY,
    CLOSE_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
    ApproveRequest,
    ReturnView,
)

# Short, on a dev server's real clock: the deadline falls soon after the reset.
SHIP_BY_SECONDS = 3.0
EXCLUDE_UPDATES = ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE


async def reset_before_the_receipt_while_refunding(client: Client, standins: ReturnStandIns) -> str:
    """Approved, received; its refund retrying (Stripe away) when the operator resets
    the return to the task that took staff's receipt, the Update not applied again. The
    reset run waits for a receipt until the ship-by time; the cancel then answers that
    the return is received, and the run refunds (the return's key: one refund) and
    closes it."""
    input = return_input().model_copy(update={"ship_by_seconds": SHIP_BY_SECONDS})
    rid = input.return_id
    standins.stripe_away.add(rid)
    handle = await start_return(client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_staff"))
    await handle.start_update(
        ReturnWorkflow.receive, RECEIPT, wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    for _ in range(300):
        if REFUND_ACTIVITY in standins.ran[rid]:
            break
        await asyncio.sleep(0.05)
    assert standins.stored[rid] is ReturnStatus.RECEIVED  # the refund retrying

    took_the_receipt = await task_that_took_the_update(client, handle.id, 1)
    await reset(client, handle.id, took_the_receipt, EXCLUDE_UPDATES)
    standins.stripe_away.discard(rid)
    latest = client.get_workflow_handle(handle.id, result_type=ReturnView)
    done: ReturnView = await latest.result()
    assert (done.status, done.refund_amount) == (ReturnStatus.CLOSED, 3 * UNIT_REFUND)
    assert standins.stored[rid] is ReturnStatus.CLOSED
    # The reset run: the deadline's cancel found it received; refunded, closed.
    assert standins.ran[rid][-4:] == [
        CANCEL_ACTIVITY,
        RECEIVE_ACTIVITY,
        REFUND_ACTIVITY,
        CLOSE_ACTIVITY,
    ], standins.ran[rid]
    return handle.id
