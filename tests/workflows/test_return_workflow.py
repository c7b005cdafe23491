"""``ReturnWorkflow`` branch by branch on the time-skipping server, with stand-in
activities: approve → label → receive → refund → closed; decline; auto-approve; the
ship-by timer; the Updates' validators; a refused label; a refused refund; each Update
coming with the start (in the first workflow task, where it runs before ``run``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from models.returns import ReturnStatus
from temporal.queues import TaskQueue
from temporal.search_attributes import RETURN_STATUS
from tests.workflows.return_standins import (
    RECEIPT,
    SHIP_BY_SECONDS,
    UNIT_REFUND,
    ReturnStandIns,
    return_input,
    start_return,
    until_approved,
)
from workflows.returns import ReturnWorkflow
from workflows.types.fulfillment import return_workflow_id
from workflows.types.returns import (
    CANCEL_ACTIVITY,
    CLOSE_ACTIVITY,
    DECLINE_ACTIVITY,
    ISSUE_LABEL_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
    ApproveRequest,
    DeclineRequest,
    ReceivedLine,
    ReceiveRequest,
    ReturnInput,
    ReturnView,
)

# The path of a return received after its ship-by time's cancel.
LATE_PATH = [
    ISSUE_LABEL_ACTIVITY,
    CANCEL_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
    CLOSE_ACTIVITY,
]


async def _status(handle: WorkflowHandle[Any, ReturnView]) -> ReturnStatus:
    return (await handle.query(ReturnWorkflow.status)).status


def _refused(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str | None:
    cause = exc.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type


def _detail(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    cause = exc.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


async def test_approve_label_receive_refund_close(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    input = return_input()
    handle = await start_return(time_skipping_env.client, input)
    assert await _status(handle) == ReturnStatus.REQUESTED

    view = await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    assert view.status == ReturnStatus.APPROVED
    view = await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    # The receipt is answered once the refund is made (closing follows).
    assert view.status == ReturnStatus.REFUNDED
    assert view.refund_amount == 3 * UNIT_REFUND

    result = await handle.result()
    assert result.status == ReturnStatus.CLOSED
    assert returns.ran[input.return_id] == [
        ISSUE_LABEL_ACTIVITY,
        RECEIVE_ACTIVITY,
        REFUND_ACTIVITY,
        CLOSE_ACTIVITY,
    ]
    label = returns.inputs[input.return_id][0]
    assert (label["staff_id"], label["auto_approved"]) == ("usr_s", False)
    assert label["ship_by_seconds"] == SHIP_BY_SECONDS
    described = await handle.describe()
    assert described.typed_search_attributes.get(RETURN_STATUS) == "closed"


async def test_decline_needs_a_reason_and_ends_the_return(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    input = return_input()
    handle = await start_return(time_skipping_env.client, input)
    with pytest.raises(WorkflowUpdateFailedError) as blank:
        await handle.execute_update(ReturnWorkflow.decline, DeclineRequest(reason="   "))
    assert _refused(blank) == "decline_reason_required"
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert _refused(early) == "return_not_approved"

    view = await handle.execute_update(
        ReturnWorkflow.decline, DeclineRequest(reason="worn", staff_id="usr_s")
    )
    assert view.status == ReturnStatus.DECLINED
    assert (await handle.result()).status == ReturnStatus.DECLINED
    assert returns.ran[input.return_id] == [DECLINE_ACTIVITY]
    assert returns.inputs[input.return_id][0]["reason"] == "worn"


async def test_an_auto_approved_reason_needs_no_staff(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """Approved by itself; staff's approval then is refused. (Sent before the run's first
    task, staff's approval would come with the start and be kept instead, since
    "return-approval-before-run-kept": a CI run found it so. That case has its own test.)"""
    input = return_input(auto_approve=True)
    handle = await start_return(time_skipping_env.client, input)
    await until_approved(handle)
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    assert _refused(again) == "return_not_requested"
    label = returns.inputs[input.return_id][0]
    assert (label["staff_id"], label["auto_approved"]) == (None, True)
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status == ReturnStatus.CLOSED


async def test_not_sent_back_in_time_is_cancelled_without_a_refund(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    input = return_input()
    handle = await start_return(time_skipping_env.client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    await time_skipping_env.sleep(timedelta(seconds=SHIP_BY_SECONDS - 3600))
    assert await _status(handle) == ReturnStatus.APPROVED  # not yet
    result = await handle.result()  # time skips to the ship-by deadline
    assert result.status == ReturnStatus.CANCELLED
    assert result.refund_amount is None
    assert returns.ran[input.return_id] == [ISSUE_LABEL_ACTIVITY, CANCEL_ACTIVITY]


async def test_at_the_ship_by_time_a_return_that_moved_on_unseen_goes_on_from_its_rows(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """The receipt was recorded where this run did not see it (a run reset to before
    staff's receive Update, not applied again: ``test_return_reset.py`` resets on a dev
    server), its refund not yet made. At the ship-by time the cancel answers that the
    return is received: the run reads the receipt's amount back, refunds (under the
    return's key: once), closes. Before, it ended ``cancelled``, the refund never made."""
    input = return_input()
    handle = await start_return(time_skipping_env.client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    returns.stored[input.return_id] = ReturnStatus.RECEIVED
    returns.amounts[input.return_id] = 2 * UNIT_REFUND
    result = await handle.result()  # time skips to the ship-by deadline
    assert (result.status, result.refund_amount) == (ReturnStatus.CLOSED, 2 * UNIT_REFUND)
    assert returns.ran[input.return_id] == LATE_PATH
    assert returns.stored[input.return_id] is ReturnStatus.CLOSED


async def test_a_label_the_carrier_scanned_by_the_ship_by_time_waits_for_the_goods(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """The ship-by time passed, but the carrier has scanned the return label (the goods
    were sent late): the cancel cannot void it (``label_in_use``). The return is not
    cancelled, nor its workflow failed with the goods on their way: it stays approved
    and takes their receipt, then refunds (failed, before "return-late-parcel-awaited")."""
    input = return_input()
    returns.labels_in_use.add(input.return_id)
    handle = await start_return(time_skipping_env.client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    await time_skipping_env.sleep(timedelta(seconds=SHIP_BY_SECONDS + 60))
    await returns.until_ran(input.return_id, CANCEL_ACTIVITY)
    assert returns.ran[input.return_id] == [ISSUE_LABEL_ACTIVITY, CANCEL_ACTIVITY]
    assert await _status(handle) == ReturnStatus.APPROVED

    view = await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert view.status == ReturnStatus.REFUNDED
    assert (await handle.result()).status == ReturnStatus.CLOSED
    assert returns.ran[input.return_id] == LATE_PATH


async def test_a_receipt_must_fit_the_return(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    input = return_input()
    handle = await start_return(time_skipping_env.client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    too_many = ReceivedLine(return_line_id="rline_b", received_quantity=1, damaged_quantity=1)
    unknown = ReceivedLine(return_line_id="rline_x", received_quantity=1, damaged_quantity=0)
    for lines in ([too_many], [unknown], [RECEIPT.lines[0], RECEIPT.lines[0]]):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ReturnWorkflow.receive, ReceiveRequest(lines=lines))
        assert _refused(refused) == "invalid_receipt"
    assert returns.ran[input.return_id] == [ISSUE_LABEL_ACTIVITY]
    view = await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert view.status == ReturnStatus.REFUNDED


async def test_a_refused_label_leaves_the_return_to_decide_again(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    input = return_input()
    returns.label_refusals.add(input.return_id)
    handle = await start_return(time_skipping_env.client, input)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    assert _refused(refused) == "return_label_failed"
    assert await _status(handle) == ReturnStatus.REQUESTED
    view = await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    assert view.status == ReturnStatus.APPROVED
    assert returns.ran[input.return_id] == [ISSUE_LABEL_ACTIVITY, ISSUE_LABEL_ACTIVITY]
    await handle.terminate("done with this test")


async def test_a_refused_refund_fails_the_return_received_for_staff(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """Stripe no longer has the money (another refund took it after receipt): the refund
    is not retried, the ``receive`` Update answers ``payment_not_refundable``, the status
    query says why, and the workflow fails with that type, ``ReturnStatus`` received.
    Before, the Update's caller was left waiting and the workflow failed bare."""
    input = return_input()
    returns.refund_refusals.add(input.return_id)
    handle = await start_return(time_skipping_env.client, input)
    await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert _refused(refused) == "payment_not_refundable"
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("payment_not_refundable", True)
    assert cause.details == ({"refundable": 500},)
    view = await handle.query(ReturnWorkflow.status)
    assert view.status == ReturnStatus.RECEIVED
    assert view.refund_error == (
        "the refund was refused: Stripe refused the refund: at most 500 can still be refunded"
    )
    assert returns.ran[input.return_id][-1] == REFUND_ACTIVITY  # tried once, not retried
    assert returns.ran[input.return_id].count(REFUND_ACTIVITY) == 1
    description = await handle.describe()
    assert description.typed_search_attributes.get(RETURN_STATUS) == "received"


def _with_start(input: ReturnInput) -> WithStartWorkflowOperation[ReturnWorkflow, ReturnView]:
    return WithStartWorkflowOperation(
        ReturnWorkflow.run,
        input,
        id=return_workflow_id(input.return_id),
        task_queue=str(TaskQueue.ORDERS),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )


async def test_an_approval_that_comes_with_the_start_issues_the_label(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """Staff's approval in the first workflow task (update-with-start): its validator and
    handler run before ``run``; the return is approved in staff's name."""
    input = return_input()
    start = _with_start(input)
    view = await time_skipping_env.client.execute_update_with_start_workflow(
        ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"), start_workflow_operation=start
    )
    assert (view.return_id, view.status) == (input.return_id, ReturnStatus.APPROVED)
    label = returns.inputs[input.return_id][0]
    assert (label["staff_id"], label["auto_approved"]) == ("usr_s", False)
    handle = await start.workflow_handle()
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status == ReturnStatus.CLOSED


async def test_staff_approval_with_the_start_of_an_auto_approved_return_is_kept(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """The approve Update is accepted before ``run`` knows the return approves itself; the
    approval it was given stands (staff's name on the label), not replaced by the
    automatic one as if staff had never acted."""
    input = return_input(auto_approve=True)
    start = _with_start(input)
    view = await time_skipping_env.client.execute_update_with_start_workflow(
        ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"), start_workflow_operation=start
    )
    assert view.status == ReturnStatus.APPROVED
    assert returns.ran[input.return_id] == [ISSUE_LABEL_ACTIVITY]
    label = returns.inputs[input.return_id][0]
    assert (label["staff_id"], label["auto_approved"]) == ("usr_s", False)
    await (await start.workflow_handle()).terminate("done with this test")


async def test_a_decline_that_comes_with_the_start_ends_the_return(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """A decline before ``run``: the return ends declined in the activation that declines
    it, and the Update still answers (not AcceptedUpdateCompletedWorkflow)."""
    input = return_input()
    start = _with_start(input)
    view = await time_skipping_env.client.execute_update_with_start_workflow(
        ReturnWorkflow.decline,
        DeclineRequest(reason="worn", staff_id="usr_s"),
        start_workflow_operation=start,
    )
    assert view.status == ReturnStatus.DECLINED
    assert (await (await start.workflow_handle()).result()).status == ReturnStatus.DECLINED
    assert returns.ran[input.return_id] == [DECLINE_ACTIVITY]


async def test_a_receipt_that_comes_with_the_start_is_refused(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """Nothing is received before the return is approved, also before ``run`` began; the
    return itself goes on, requested."""
    input = return_input()
    start = _with_start(input)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await time_skipping_env.client.execute_update_with_start_workflow(
            ReturnWorkflow.receive, RECEIPT, start_workflow_operation=start
        )
    assert _refused(refused) == "return_not_approved"
    handle = await start.workflow_handle()
    assert await _status(handle) == ReturnStatus.REQUESTED
    view = await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_s"))
    assert view.status == ReturnStatus.APPROVED
    assert returns.ran[input.return_id] == [ISSUE_LABEL_ACTIVITY]
    await handle.terminate("done with this test")


async def test_a_refused_label_answers_an_approval_that_came_with_the_start(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    input = return_input()
    returns.label_refusals.add(input.return_id)
    start = _with_start(input)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await time_skipping_env.client.execute_update_with_start_workflow(
            ReturnWorkflow.approve,
            ApproveRequest(staff_id="usr_s"),
            start_workflow_operation=start,
        )
    assert _refused(refused) == "return_label_failed"
    handle = await start.workflow_handle()
    assert await _status(handle) == ReturnStatus.REQUESTED
    await handle.terminate("done with this test")


async def test_a_second_action_while_the_first_is_under_way_is_refused_saying_so(
    time_skipping_env: WorkflowEnvironment, returns: ReturnStandIns
) -> None:
    """Staff's double click: an approve while the first one's label is being bought, a
    receipt while the first one is being recorded. Each is refused with its code and a
    detail that says so: before, "the return is requested" (and "… is approved") came
    with return_not_requested (and return_not_approved)."""
    input = return_input()
    label = returns.holds[(ISSUE_LABEL_ACTIVITY, input.return_id)] = asyncio.Event()
    receipt = returns.holds[(RECEIVE_ACTIVITY, input.return_id)] = asyncio.Event()
    handle = await start_return(time_skipping_env.client, input)
    first = await handle.start_update(
        ReturnWorkflow.approve,
        ApproveRequest(staff_id="usr_s"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(ReturnWorkflow.approve, ApproveRequest(staff_id="usr_t"))
    assert _refused(again) == "return_not_requested"
    assert _detail(again) == "the return is already being approved or declined"
    label.set()
    assert (await first.result()).status == ReturnStatus.APPROVED

    receiving = await handle.start_update(
        ReturnWorkflow.receive, RECEIPT, wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    with pytest.raises(WorkflowUpdateFailedError) as twice:
        await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert _refused(twice) == "return_not_approved"
    assert _detail(twice) == "the return's receipt is already being recorded"
    receipt.set()
    assert (await receiving.result()).status == ReturnStatus.REFUNDED
    assert (await handle.result()).status == ReturnStatus.CLOSED
