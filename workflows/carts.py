"""``CartAbandonmentWorkflow``: one reminder email when a cart sits untouched.

One workflow per active cart (id ``cart-abandonment-{cartId}``). It holds a durable
timer; every cart change (the ``cart_changed`` signal) pushes the deadline back, the
updatable-timer pattern. When the deadline passes it sends one reminder and ends (a
change while that email goes out continues it as new, to time the next quiet spell);
clearing the cart (``cart_closed``) ends it without one. Checkout signals nothing (a
signal and a workflow task per order): at the deadline the workflow asks whether the
cart is still active, and a checked-out one gets no reminder.

Its input, its steps' inputs and their results name the account, never its address or
name: the email step reads those when it sends (``email.send`` with ``user_id``), so an
erased account's address is in no history.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.accounts import AccountActivities, ContactInput
    from activities.email import (
        NOTIFICATION_RETRY,
        NOTIFICATION_SCHEDULE_TO_CLOSE,
        NOTIFICATION_START_TO_CLOSE,
        EmailActivities,
        SendEmailInput,
    )
    from workflows.types.carts import (
        CART_ABANDONMENT_WORKFLOW,
        CART_CHANGED_SIGNAL,
        CART_CLOSED_SIGNAL,
        DEADLINE_QUERY,
        AbandonmentInput,
    )


# A change (or the cart cleared) while the deadline's contact step ran was lost: the
# reminder went out about a cart just touched, and the workflow ended, so no timer ran
# from the change. Since this patch the workflow waits again, from the new deadline.
CHANGE_AT_DEADLINE = "cart-change-at-deadline"
# A change while the reminder itself was being sent was lost too: the run ended with
# that email and no timer ran from the change, so a cart left again after it was never
# reminded (a change after the end starts a new run, which times it). Since this patch
# the run continues as new with the change's deadline: the email stays sent, and the
# cart's next quiet spell gets its own reminder.
CHANGE_DURING_REMINDER = "cart-change-during-reminder"


@workflow.defn(name=CART_ABANDONMENT_WORKFLOW)
class CartAbandonmentWorkflow:
    def __init__(self) -> None:
        self._delay = timedelta(0)
        self._deadline: datetime | None = None
        self._changes = 0
        self._closed = False

    @workflow.run
    async def run(self, input: AbandonmentInput) -> str:
        self._delay = timedelta(seconds=input.delay_seconds)
        if self._deadline is None:  # a change signalled with the start already set it
            self._deadline = input.deadline or workflow.now() + self._delay
        while True:
            await self._until_deadline()
            if self._closed:
                return "closed"
            # A deleted account gets nothing; nor does a cart checked out since (checkout
            # does not signal: it would cost every order a workflow task here). Asked
            # without the address (``address=False``): the email step reads it when it
            # sends, so the run's history never holds it. The same commands as before,
            # so no patch: a run started earlier, or replayed, schedules the same steps.
            changes = self._changes
            asks_cart = workflow.patched("cart-checked-at-deadline")
            contact = await workflow.execute_activity_method(
                AccountActivities.contact,
                ContactInput(
                    user_id=input.user_id,
                    cart_id=input.cart_id if asks_cart else None,
                    address=False,
                ),
                start_to_close_timeout=timedelta(seconds=10),
            )
            moved = self._closed or self._changes != changes
            if not (moved and workflow.patched(CHANGE_AT_DEADLINE)):
                break
            # The shopper came back (or cleared the cart) while we asked: no reminder
            # now; wait for the deadline the change set.
        if not contact.active or not contact.cart_active:
            return "closed"
        changes = self._changes
        await workflow.execute_activity_method(
            EmailActivities.send_email,
            SendEmailInput(
                # One reminder per run, however often the activity is retried.
                idempotency_key=f"cart-reminder:{input.cart_id}:{workflow.info().run_id}",
                template="cart_reminder",
                # Nobody named here: the step writes to the account's address and name
                # as they are when it sends (held against an erasure), to no one once
                # the account is erased, however long it is retried.
                to="",
                context={},
                user_id=input.user_id,
            ),
            start_to_close_timeout=NOTIFICATION_START_TO_CLOSE,
            schedule_to_close_timeout=NOTIFICATION_SCHEDULE_TO_CLOSE,
            retry_policy=NOTIFICATION_RETRY,
        )
        back = not self._closed and self._changes != changes and self._deadline is not None
        if back and workflow.patched(CHANGE_DURING_REMINDER):
            # A new run: a new reminder key (the run id), the change's deadline kept; an
            # input of a run started before carries no address into the next run.
            workflow.continue_as_new(
                input.model_copy(update={"deadline": self._deadline, "email": "", "name": ""})
            )
        return "reminded"

    async def _until_deadline(self) -> None:
        """Until the deadline passes (each change pushes it back) or the cart is closed."""
        assert self._deadline is not None
        while not self._closed:
            remaining = (self._deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return
            seen = self._changes
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._closed or self._changes != seen,  # type: ignore[misc]
                    timeout=remaining,
                )
            except TimeoutError:
                return

    @workflow.signal(name=CART_CHANGED_SIGNAL)
    def cart_changed(self) -> None:
        self._changes += 1
        self._deadline = workflow.now() + self._delay if self._delay else None

    @workflow.signal(name=CART_CLOSED_SIGNAL)
    def cart_closed(self) -> None:
        self._closed = True

    @workflow.query(name=DEADLINE_QUERY)
    def deadline(self) -> datetime | None:
        return self._deadline
