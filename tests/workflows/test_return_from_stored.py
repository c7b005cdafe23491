"""``ReturnWorkflow`` goes on from the return as stored (since "return-reset-reads-the-
return"), branch by branch on the time-skipping server with stand-in activities.

A run reset to its first workflow task (the README's repair), its Updates not sent again,
starts with a return whose row has moved on: the run reads it at its start. The
time-skipping server cannot reset a workflow, so each test starts the run with the
stand-ins' row already where the earlier run left it; ``test_return_reset.py`` resets
runs at later tasks on a dev server. Before the patch every one of these runs waited for
a decision the row already had (and refused staff's receipt, ``return_not_approved``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from models.returns import ReturnStatus
from tests.workflows.return_standins import (
    RECEIPT,
    SHIP_BY_SECONDS,
    UNIT_REFUND,
    ReturnStandIns,
    ended,
    return_input,
    start_return,
    until_approved,
    until_status,
)
from workflows.returns import ReturnWorkflow
from workflows.types.returns import (
    CANCEL_ACTIVITY,
    CLOSE_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
)


async def test_an_approved_return_waits_for_no_approval_and_takes_the_receipt(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """Approved (its label bought) before the run knew: the run reads it approved, takes
    staff's receipt, refunds and closes; no second label."""
    input = return_input()
    now = await time_skipping_env.get_current_time()
    returns.approved(input.return_id, ship_by=now + timedelta(seconds=SHIP_BY_SECONDS))
    handle = await start_return(time_skipping_env.client, input)
    await until_approved(handle)
    view = await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (view.status, view.refund_amount) == (ReturnStatus.REFUNDED, 3 * UNIT_REFUND)
    assert (await ended(handle)).status is ReturnStatus.CLOSED
    assert returns.ran[input.return_id] == [RECEIVE_ACTIVITY, REFUND_ACTIVITY, CLOSE_ACTIVITY]
    assert returns.reads[input.return_id] == 1


async def test_an_approved_return_is_cancelled_at_its_stored_ship_by_time(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """The deadline is the one the approval stored, not a new one from the run's start:
    approved with an hour left, it is cancelled (label voided) once that hour passes."""
    input = return_input()
    now = await time_skipping_env.get_current_time()
    returns.approved(input.return_id, ship_by=now + timedelta(hours=1))
    handle = await start_return(time_skipping_env.client, input)
    await until_approved(handle)
    await time_skipping_env.sleep(timedelta(hours=2))
    await until_status(handle, ReturnStatus.CANCELLED)  # two hours on, not fourteen days
    assert (await ended(handle)).status is ReturnStatus.CANCELLED
    assert returns.ran[input.return_id] == [CANCEL_ACTIVITY]


@pytest.mark.parametrize(
    ("stored", "steps", "amount"),
    [
        # Received, its refund not made: refunded (the amount fixed at receipt, read with
        # the row: no receive step again), closed.
        (ReturnStatus.RECEIVED, [REFUND_ACTIVITY, CLOSE_ACTIVITY], 2 * UNIT_REFUND),
        # Refunded: closed, nothing refunded again.
        (ReturnStatus.REFUNDED, [CLOSE_ACTIVITY], 2 * UNIT_REFUND),
        # Closed, cancelled, declined: it ends as it stands.
        (ReturnStatus.CLOSED, [], 2 * UNIT_REFUND),
        (ReturnStatus.CANCELLED, [], None),
        (ReturnStatus.DECLINED, [], None),
    ],
)
async def test_a_return_that_moved_on_goes_on_from_its_row(
    time_skipping_env: WorkflowEnvironment,
    returns: ReturnStandIns,
    stored: ReturnStatus,
    steps: list[str],
    amount: int | None,
) -> None:
    input = return_input()
    returns.stored[input.return_id] = stored
    if amount is not None:
        returns.amounts[input.return_id] = amount
    handle = await start_return(time_skipping_env.client, input)
    done = await ended(handle)
    closed = ReturnStatus.CLOSED if amount is not None else stored
    assert (done.status, done.refund_amount) == (closed, amount)
    assert returns.ran[input.return_id] == steps
    assert returns.stored[input.return_id] is closed
    assert (await handle.query(ReturnWorkflow.status)).status is closed
