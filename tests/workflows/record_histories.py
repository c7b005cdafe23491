"""Record the event histories that ``test_replay.py`` replays.

Run after a deliberate, compatible workflow change (``workflow.patched``) to add a
history for the new code path; never to paper over a replay failure, which means the
change would break workflows already running:

    .venv/bin/python -m tests.workflows.record_histories
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.accounts import Contact, ContactInput
from activities.email import SendEmailInput, SendEmailResult
from activities.system import ProbeInput, ProbeResult
from cli.stack.process import find_binary
from workflows.carts import AbandonmentInput, CartAbandonmentWorkflow
from workflows.onboarding import OnboardingInput, UserOnboardingWorkflow
from workflows.system import StackProbeInput, StackProbeWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
WORKFLOWS = [CartAbandonmentWorkflow, UserOnboardingWorkflow, StackProbeWorkflow]


@activity.defn(name="email.send")
async def send_email(input: SendEmailInput) -> SendEmailResult:
    return SendEmailResult(message_id="msg_recorded", provider_message_id="x", already_sent=False)


@activity.defn(name="accounts.contact")
async def contact(input: ContactInput) -> Contact:
    return Contact(active=True, email="ada@example.com", name="Ada")


@activity.defn(name="system.probe")
async def probe(input: ProbeInput) -> ProbeResult:
    return ProbeResult(queue=input.queue, host="recorder", pid=1, database=True, redis=True)


async def _save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )
    queue = f"record-{uuid4().hex[:6]}"
    try:
        async with Worker(
            env.client, task_queue=queue, workflows=WORKFLOWS,
            activities=[send_email, contact, probe],
        ):  # fmt: skip
            cart = AbandonmentInput(
                cart_id="cart_recorded", user_id="user_1", email="ada@example.com",
                name="Ada", delay_seconds=24 * 3600,
            )  # fmt: skip
            handle = await env.client.start_workflow(
                CartAbandonmentWorkflow.run, cart, id="cart-reminded", task_queue=queue,
                start_signal="cart_changed",
            )  # fmt: skip
            await env.sleep(timedelta(hours=5))
            await handle.signal(CartAbandonmentWorkflow.cart_changed)
            await handle.result()
            await _save(env.client, "cart-reminded", "cart_abandonment_reminded")

            handle = await env.client.start_workflow(
                CartAbandonmentWorkflow.run, cart, id="cart-closed", task_queue=queue
            )
            await env.sleep(timedelta(hours=1))
            await handle.signal(CartAbandonmentWorkflow.cart_closed)
            await handle.result()
            await _save(env.client, "cart-closed", "cart_abandonment_closed")

            await env.client.execute_workflow(
                UserOnboardingWorkflow.run,
                OnboardingInput(user_id="user_1", email="ada@example.com", name="Ada"),
                id="onboarding", task_queue=queue,
            )  # fmt: skip
            await _save(env.client, "onboarding", "user_onboarding_sent")

            await env.client.execute_workflow(
                StackProbeWorkflow.run, StackProbeInput(queues=[queue]),
                id="probe", task_queue=queue,
            )  # fmt: skip
            await _save(env.client, "probe", "stack_probe_ok")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
