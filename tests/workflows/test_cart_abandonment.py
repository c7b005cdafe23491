"""The abandoned-cart timer, in a time-skipping environment (email replaced by name),
with signals that come with the start (signal-with-start: the handler runs before
``run``), while the deadline's contact step runs and while the reminder goes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from uuid import uuid4

from temporalio import activity
from temporalio.api.enums.v1 import EventType as HistoryEvent
from temporalio.client import WorkflowExecutionDescription, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.accounts import Contact, ContactInput
from activities.email import SendEmailInput, SendEmailResult
from temporal.clients.carts import workflow_id
from tests.stack import suite_worker
from workflows.carts import CartAbandonmentWorkflow
from workflows.types.carts import AbandonmentInput

DAY = 24 * 3600
ADDRESS = "ada@example.com"


class Outbox:
    def __init__(self, contact: Contact | None = None) -> None:
        self.sent: list[SendEmailInput] = []
        self.asked: list[ContactInput] = []
        # As the step answers the reminder, which asks without the address.
        self.contact_now = contact or Contact(active=True, email="", name="")
        # When set, the next contact step waits for it (the test acts meanwhile).
        self.asking: asyncio.Event | None = None
        self.answer: asyncio.Event | None = None
        # When set, the next send waits for it (the test acts while the email goes out).
        self.sending: asyncio.Event | None = None
        self.sent_answer: asyncio.Event | None = None

    @activity.defn(name="accounts.contact")
    async def contact(self, input: ContactInput) -> Contact:
        self.asked.append(input)
        if self.asking is not None and self.answer is not None:
            self.asking.set()
            await self.answer.wait()
            self.asking = self.answer = None
        if input.address and self.contact_now.active:  # as the step answers when asked
            return self.contact_now.model_copy(update={"email": ADDRESS, "name": "Ada"})
        return self.contact_now

    @activity.defn(name="email.send")
    async def send(self, input: SendEmailInput) -> SendEmailResult:
        self.sent.append(input)
        if self.sending is not None and self.sent_answer is not None:
            self.sending.set()
            await self.sent_answer.wait()
            self.sending = self.sent_answer = None
        return SendEmailResult(message_id="msg_test", provider_message_id="x", already_sent=False)


def _input(cart_id: str, *, older: bool = False) -> AbandonmentInput:
    """The run's input; ``older``: as started before the reminder read the address when
    it sends (the shopper's address and name in it)."""
    if older:
        return AbandonmentInput(
            cart_id=cart_id, user_id="user_1", email=ADDRESS, name="Ada", delay_seconds=DAY
        )
    return AbandonmentInput(cart_id=cart_id, user_id="user_1", delay_seconds=DAY)


def _naming_the_address(history: WorkflowHistory) -> list[str]:
    """The kinds of the history's events that carry the shopper's address."""
    return [
        HistoryEvent.Name(e.event_type)
        for e in history.events
        if ADDRESS.encode() in e.SerializeToString()
    ]


@asynccontextmanager
async def _cart_workflow(
    env: WorkflowEnvironment,
    outbox: Outbox,
    start_signal: str | None = None,
    *,
    older: bool = False,
) -> AsyncIterator[tuple[WorkflowHandle[CartAbandonmentWorkflow, str], str]]:
    """A fresh cart's workflow (with ``start_signal``, signal-with-start) and a worker of
    its own running it against ``outbox``, while the block runs: its handle and cart id."""
    queue, cart = f"carts-{uuid4().hex[:6]}", f"cart_{uuid4().hex[:8]}"
    async with suite_worker(
        env.client,
        task_queue=queue,
        workflows=[CartAbandonmentWorkflow],
        activities=[outbox.send, outbox.contact],
    ):
        handle = await env.client.start_workflow(
            CartAbandonmentWorkflow.run,
            _input(cart, older=older),
            id=workflow_id(cart),
            task_queue=queue,
            start_signal=start_signal,
        )
        yield handle, cart


async def test_activity_pushes_the_timer_back_and_it_fires_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, outbox = time_skipping_env, Outbox()
    async with _cart_workflow(env, outbox, "cart_changed") as (handle, cart):
        first_deadline = await handle.query(CartAbandonmentWorkflow.deadline)
        await env.sleep(timedelta(hours=20))
        await handle.signal(CartAbandonmentWorkflow.cart_changed)  # the shopper is back
        pushed = await handle.query(CartAbandonmentWorkflow.deadline)
        assert first_deadline is not None
        assert pushed is not None
        assert pushed - first_deadline >= timedelta(hours=19)
        await env.sleep(timedelta(hours=10))  # 30 h after the start, 10 h after the change
        assert outbox.sent == []
        assert await handle.result() == "reminded"  # time skips to the pushed deadline
    assert len(outbox.sent) == 1
    reminder = outbox.sent[0]
    assert reminder.template == "cart_reminder"
    # The account, not an address: the step reads the address and name when it sends.
    assert (reminder.to, reminder.context, reminder.user_id) == ("", {}, "user_1")
    assert outbox.asked == [ContactInput(user_id="user_1", cart_id=cart, address=False)]
    assert reminder.idempotency_key.startswith(f"cart-reminder:{cart}:")


async def test_clearing_ends_it_without_a_reminder(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, outbox = time_skipping_env, Outbox()
    async with _cart_workflow(env, outbox) as (handle, _cart):
        await env.sleep(timedelta(hours=5))
        await handle.signal(CartAbandonmentWorkflow.cart_closed)
        assert await handle.result() == "closed"
    assert outbox.sent == []


async def _closed_at_deadline(env: WorkflowEnvironment, contact: Contact) -> tuple[Outbox, str]:
    """Runs a cart's workflow to its deadline with ``contact`` as the activity's answer;
    it must end closed, having sent nothing. Returns the outbox and the cart's id."""
    outbox = Outbox(contact)
    async with _cart_workflow(env, outbox) as (handle, cart):
        assert await handle.result() == "closed"
    assert outbox.sent == []
    return outbox, cart


async def test_a_deleted_account_gets_no_reminder(time_skipping_env: WorkflowEnvironment) -> None:
    await _closed_at_deadline(time_skipping_env, Contact(active=False))


async def test_a_cart_checked_out_meanwhile_gets_no_reminder_at_its_deadline(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Checkout signals nothing: at the deadline the workflow asks about the cart."""
    contact = Contact(active=True, cart_active=False)
    outbox, cart = await _closed_at_deadline(time_skipping_env, contact)
    assert outbox.asked == [ContactInput(user_id="user_1", cart_id=cart, address=False)]


async def test_closed_with_the_start_ends_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, outbox = time_skipping_env, Outbox()
    async with _cart_workflow(env, outbox, "cart_closed") as (handle, _cart):
        assert await handle.result() == "closed"
    assert outbox.asked == []
    assert outbox.sent == []


async def test_a_change_with_the_start_sets_the_deadline_one_delay_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The handler runs before ``run`` knows the delay: the deadline is still the start
    plus the delay (not the start itself, which would remind at once)."""
    env, outbox = time_skipping_env, Outbox()
    async with _cart_workflow(env, outbox, "cart_changed") as (handle, _cart):
        deadline = await handle.query(CartAbandonmentWorkflow.deadline)
        started = (await handle.describe()).start_time
        assert deadline is not None
        # workflow.now() is its first task's time, a moment after the start.
        assert timedelta(seconds=DAY) <= deadline - started < timedelta(seconds=DAY + 60)
        assert await handle.result() == "reminded"
        closed = (await handle.describe()).close_time
        assert closed is not None
        assert closed - started >= timedelta(seconds=DAY)
    assert len(outbox.sent) == 1


async def test_a_change_while_the_deadline_is_checked_waits_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The shopper is back while the workflow asks about them at the deadline: no
    reminder now (it ended with one and dropped the change, so no timer ran from it);
    it waits a full delay from the change, then reminds once."""
    env, outbox = time_skipping_env, Outbox()
    outbox.asking, outbox.answer = asyncio.Event(), asyncio.Event()
    asking = outbox.asking
    async with _cart_workflow(env, outbox, "cart_changed") as (handle, _cart):
        with env.auto_time_skipping_disabled():
            await env.sleep(timedelta(seconds=DAY + 1))  # past the deadline
            await asyncio.wait_for(asking.wait(), 10)
            await handle.signal(CartAbandonmentWorkflow.cart_changed)
            changed_at = await env.get_current_time()
            outbox.answer.set()
            for _ in range(500):  # until the workflow took the answer and waits again
                history = await handle.fetch_history()
                if sum(e.HasField("timer_started_event_attributes") for e in history.events) >= 2:
                    break
                await asyncio.sleep(0.01)
            assert outbox.sent == []
        assert await handle.result() == "reminded"
        closed = (await handle.describe()).close_time
        assert closed is not None
        assert closed - changed_at >= timedelta(seconds=DAY - 60)
    assert len(outbox.sent) == 1
    assert len(outbox.asked) == 2


async def _message_while_the_reminder_goes_out(
    env: WorkflowEnvironment, outbox: Outbox, signal: str, *, older: bool = False
) -> tuple[WorkflowExecutionDescription, str, str, datetime]:
    """Past the deadline, ``signal`` sent while the reminder is being sent (the send
    then completes), and the workflow waited out: its latest run's description and
    result, its first run's id, and when the signal was sent."""
    outbox.sending, outbox.sent_answer = asyncio.Event(), asyncio.Event()
    sending, answer = outbox.sending, outbox.sent_answer
    async with _cart_workflow(env, outbox, "cart_changed", older=older) as (handle, _cart):
        with env.auto_time_skipping_disabled():
            await env.sleep(timedelta(seconds=DAY + 1))  # past the deadline
            await asyncio.wait_for(sending.wait(), 10)
            await handle.signal(signal)
            signalled_at = await env.get_current_time()
            answer.set()
        result = await handle.result()  # follows a continued run to its end
        latest = await env.client.get_workflow_handle(handle.id).describe()
    assert handle.result_run_id is not None  # the run start_workflow started
    return latest, result, handle.result_run_id, signalled_at


async def test_a_change_while_the_reminder_goes_out_times_the_next_one(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The shopper is back while the reminder is being sent: that email stays sent, and
    the cart's next quiet spell gets a reminder of its own a full delay after the change
    (the run used to end with the email and drop the change, so a cart left again was
    never reminded). The run continues as new, so the second reminder has its own key."""
    env, outbox = time_skipping_env, Outbox()
    latest, result, first_run, changed_at = await _message_while_the_reminder_goes_out(
        env, outbox, "cart_changed"
    )
    assert result == "reminded"
    assert latest.run_id != first_run
    assert latest.close_time is not None
    assert latest.close_time - changed_at >= timedelta(seconds=DAY - 60)
    assert len(outbox.sent) == 2
    assert outbox.sent[0].idempotency_key != outbox.sent[1].idempotency_key
    assert len(outbox.asked) == 2


async def test_a_run_started_with_the_address_carries_it_no_further(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A run started before the reminder read the address when it sends has it in its
    input (kept: it is that run's start): its steps are asked without it, and a run it
    continues as new is given none. Before, the contact step's answer and the email
    step's input held the address too, and the next run's input again."""
    env, outbox = time_skipping_env, Outbox()
    latest, result, first_run, _ = await _message_while_the_reminder_goes_out(
        env, outbox, "cart_changed", older=True
    )
    assert result == "reminded"
    assert latest.run_id != first_run
    first = await env.client.get_workflow_handle(latest.id, run_id=first_run).fetch_history()
    assert _naming_the_address(first) == ["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"]
    continued = await env.client.get_workflow_handle(
        latest.id, run_id=latest.run_id
    ).fetch_history()
    assert _naming_the_address(continued) == []
    assert [(m.to, m.context) for m in outbox.sent] == [("", {}), ("", {})]


async def test_clearing_while_the_reminder_goes_out_ends_with_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Emptied while the reminder is being sent: the email stays sent and nothing waits."""
    env, outbox = time_skipping_env, Outbox()
    latest, result, first_run, _ = await _message_while_the_reminder_goes_out(
        env, outbox, "cart_closed"
    )
    assert result == "reminded"
    assert latest.run_id == first_run
    assert len(outbox.sent) == 1
