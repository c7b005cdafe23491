"""The cart reminders' and the onboarding's recordings, and the stand-ins of the
activities they call (``email.send``, ``accounts.contact``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.accounts import Contact, ContactInput
from activities.email import SendEmailInput, SendEmailResult
from tests.workflows.recordings import recording
from workflows.carts import CartAbandonmentWorkflow
from workflows.onboarding import UserOnboardingWorkflow
from workflows.types.carts import AbandonmentInput
from workflows.types.onboarding import OnboardingInput

# The first reminder of this cart waits for the recording to change the cart.
CHANGED_DURING_REMINDER_CART = "cart_recorded_changed_during_reminder"
SENDING_REMINDER = asyncio.Event()
CHANGED_DURING_REMINDER = asyncio.Event()


@activity.defn(name="email.send")
async def send_email(input: SendEmailInput) -> SendEmailResult:
    if (
        CHANGED_DURING_REMINDER_CART in input.idempotency_key
        and not CHANGED_DURING_REMINDER.is_set()
    ):
        SENDING_REMINDER.set()
        await CHANGED_DURING_REMINDER.wait()
    return SendEmailResult(message_id="msg_recorded", provider_message_id="x", already_sent=False)


# A cart asked about by id (since "cart-checked-at-deadline") was checked out.
CHECKED_OUT_CART = "cart_recorded_checked_out"


# The first contact step of this cart waits for the recording to change the cart.
CHANGED_AT_DEADLINE_CART = "cart_recorded_changed_at_deadline"
ASKED_AT_DEADLINE = asyncio.Event()
CHANGED_AT_DEADLINE = asyncio.Event()


@activity.defn(name="accounts.contact")
async def contact(input: ContactInput) -> Contact:
    if input.cart_id == CHANGED_AT_DEADLINE_CART and not CHANGED_AT_DEADLINE.is_set():
        ASKED_AT_DEADLINE.set()
        await CHANGED_AT_DEADLINE.wait()
    active = input.cart_id != CHECKED_OUT_CART
    if not input.address:  # the reminder, since it reads the address when it sends
        return Contact(active=True, email="", name="", cart_active=active)
    return Contact(active=True, email="ada@example.com", name="Ada", cart_active=active)


# As runs were started before the reminder read the address when it sends.
CART = AbandonmentInput(
    cart_id="cart_recorded",
    user_id="user_1",
    email="ada@example.com",
    name="Ada",
    delay_seconds=24 * 3600,
)


@recording("cart_abandonment_reminded")
async def cart_reminded(env: WorkflowEnvironment, queue: str) -> str:
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART,
        id="cart-reminded",
        task_queue=queue,
        start_signal="cart_changed",
    )
    await env.sleep(timedelta(hours=5))
    await handle.signal(CartAbandonmentWorkflow.cart_changed)
    await handle.result()
    return handle.id


@recording("cart_abandonment_reminded_without_address")
async def cart_reminded_without_address(env: WorkflowEnvironment, queue: str) -> str:
    """Since the reminder reads the address when it sends: a run given the account only,
    whose steps are asked and answered without the address."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        AbandonmentInput(cart_id="cart_recorded_unnamed", user_id="user_1", delay_seconds=3600),
        id="cart-reminded-without-address",
        task_queue=queue,
        start_signal="cart_changed",
    )
    assert await handle.result() == "reminded"
    return handle.id


@recording("cart_abandonment_closed")
async def cart_closed(env: WorkflowEnvironment, queue: str) -> str:
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run, CART, id="cart-closed", task_queue=queue
    )
    await env.sleep(timedelta(hours=1))
    await handle.signal(CartAbandonmentWorkflow.cart_closed)
    await handle.result()
    return handle.id


@recording("cart_abandonment_checked_out")
async def cart_checked_out(env: WorkflowEnvironment, queue: str) -> str:
    """Since "cart-checked-at-deadline": checkout signals nothing; at the deadline the
    cart is found checked out and no reminder goes."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART.model_copy(update={"cart_id": CHECKED_OUT_CART}),
        id="cart-checked-out",
        task_queue=queue,
    )
    assert await handle.result() == "closed"
    return handle.id


@recording("cart_abandonment_changed_at_deadline")
async def cart_changed_at_deadline(env: WorkflowEnvironment, queue: str) -> str:
    """Since "cart-change-at-deadline": the shopper is back while the deadline's contact
    step runs; the workflow waits again and reminds a day after the change."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART.model_copy(update={"cart_id": CHANGED_AT_DEADLINE_CART}),
        id="cart-changed-at-deadline",
        task_queue=queue,
        start_signal="cart_changed",
    )
    with env.auto_time_skipping_disabled():
        await env.sleep(timedelta(hours=24, seconds=1))
        await asyncio.wait_for(ASKED_AT_DEADLINE.wait(), 10)
        await handle.signal(CartAbandonmentWorkflow.cart_changed)
        CHANGED_AT_DEADLINE.set()
    assert await handle.result() == "reminded"
    return handle.id


@recording("cart_abandonment_changed_during_reminder")
async def cart_changed_during_reminder(env: WorkflowEnvironment, queue: str) -> str:
    """Since "cart-change-during-reminder": the shopper is back while the reminder goes
    out; the first run's history, which ends by continuing as new."""
    handle = await env.client.start_workflow(
        CartAbandonmentWorkflow.run,
        CART.model_copy(update={"cart_id": CHANGED_DURING_REMINDER_CART}),
        id="cart-changed-during-reminder",
        task_queue=queue,
        start_signal="cart_changed",
    )
    first = handle.result_run_id
    with env.auto_time_skipping_disabled():
        await env.sleep(timedelta(hours=24, seconds=1))
        await asyncio.wait_for(SENDING_REMINDER.wait(), 10)
        await handle.signal(CartAbandonmentWorkflow.cart_changed)
        CHANGED_DURING_REMINDER.set()
    assert await handle.result() == "reminded"
    return f"{handle.id}@{first}"


@recording("user_onboarding_sent")
async def onboarding(env: WorkflowEnvironment, queue: str) -> str:
    # As runs were started before the welcome read the address when it is sent.
    await env.client.execute_workflow(
        UserOnboardingWorkflow.run,
        OnboardingInput(user_id="user_1", email="ada@example.com", name="Ada"),
        id="onboarding",
        task_queue=queue,
    )
    return "onboarding"


@recording("user_onboarding_sent_without_address")
async def onboarding_without_address(env: WorkflowEnvironment, queue: str) -> str:
    """Since the welcome reads the address when it is sent: a run given the account
    only, whose email step is given neither address nor name."""
    await env.client.execute_workflow(
        UserOnboardingWorkflow.run,
        OnboardingInput(user_id="user_1"),
        id="onboarding-without-address",
        task_queue=queue,
    )
    return "onboarding-without-address"
