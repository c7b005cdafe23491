"""A worker of the release before taking a cart reminder this release started: it asked
the contact step for the address and took an answer without one (``None``) as an erased
account's, ending the run with no reminder. This release asks without the address, and
the step answers it empty (``""``), so the older code reminds as this one does: the
recorded ``cart_abandonment_reminded_without_address`` (made on this release) replays on
it. Recorded with ``None`` answers, it ended "closed" there (a different command: the
replay failed)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.accounts import AccountActivities, ContactInput
from activities.email import (
    NOTIFICATION_RETRY,
    NOTIFICATION_SCHEDULE_TO_CLOSE,
    NOTIFICATION_START_TO_CLOSE,
    EmailActivities,
    SendEmailInput,
)
from tests.workflows.record_histories import HISTORIES
from workflows.carts import CHANGE_AT_DEADLINE, CHANGE_DURING_REMINDER, CartAbandonmentWorkflow
from workflows.types.carts import (
    CART_ABANDONMENT_WORKFLOW,
    AbandonmentInput,
)


@workflow.defn(name=CART_ABANDONMENT_WORKFLOW, sandboxed=False)
class OlderRelease(CartAbandonmentWorkflow):
    """``CartAbandonmentWorkflow`` as the release before had it (c040385): its ``run``,
    verbatim; its handlers and timer are this release's (unchanged since)."""

    @workflow.run
    async def run(self, input: AbandonmentInput) -> str:
        self._delay = timedelta(seconds=input.delay_seconds)
        if self._deadline is None:  # a change signalled with the start already set it
            self._deadline = input.deadline or workflow.now() + self._delay
        while True:
            await self._until_deadline()
            if self._closed:
                return "closed"
            # Write to whoever the shopper is *now*: the address may have changed in a
            # day, and a deleted account gets nothing; nor does a cart checked out since
            # (checkout does not signal: it would cost every order a workflow task here).
            changes = self._changes
            asks_cart = workflow.patched("cart-checked-at-deadline")
            contact = await workflow.execute_activity_method(
                AccountActivities.contact,
                ContactInput(user_id=input.user_id, cart_id=input.cart_id if asks_cart else None),
                start_to_close_timeout=timedelta(seconds=10),
            )
            moved = self._closed or self._changes != changes
            if not (moved and workflow.patched(CHANGE_AT_DEADLINE)):
                break
            # The shopper came back (or cleared the cart) while we asked: no reminder
            # now; wait for the deadline the change set.
        if not contact.active or contact.email is None or not contact.cart_active:
            return "closed"
        changes = self._changes
        await workflow.execute_activity_method(
            EmailActivities.send_email,
            SendEmailInput(
                # One reminder per run, however often the activity is retried.
                idempotency_key=f"cart-reminder:{input.cart_id}:{workflow.info().run_id}",
                template="cart_reminder",
                to=contact.email,
                context={"name": contact.name or input.name},
                user_id=input.user_id,  # read again when sent (retried for hours)
            ),
            start_to_close_timeout=NOTIFICATION_START_TO_CLOSE,
            schedule_to_close_timeout=NOTIFICATION_SCHEDULE_TO_CLOSE,
            retry_policy=NOTIFICATION_RETRY,
        )
        back = not self._closed and self._changes != changes and self._deadline is not None
        if back and workflow.patched(CHANGE_DURING_REMINDER):
            # A new run: a new reminder key (the run id), the change's deadline kept.
            workflow.continue_as_new(input.model_copy(update={"deadline": self._deadline}))
        return "reminded"


async def test_a_run_this_release_started_replays_on_the_release_before() -> None:
    name = "cart_abandonment_reminded_without_address"
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(workflows=[OlderRelease], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
