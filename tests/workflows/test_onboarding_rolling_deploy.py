"""The welcome across a rolling deploy, now that its run is given the account alone.

Both ways round: a run this release started (``email`` and ``name`` sent as ``""``)
replays on the release before's workflow, whose input required them; and a run started
with the release before's input (an owed start row relayed after the deploy, a run
still retrying its email) names neither in what this release's step is given. The
history of such a run (``user_onboarding_sent``) replays on this release
(``test_replay.py``): the step is the same command, only its input changed, which
replay does not compare, so no patch."""

from __future__ import annotations

from uuid import uuid4

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.email import SendEmailInput, SendEmailResult
from tests.stack import suite_worker
from tests.workflows.record_histories import HISTORIES
from workflows.onboarding import UserOnboardingWorkflow
from workflows.types.onboarding import USER_ONBOARDING_WORKFLOW, RetrySpec

ADDRESS = "ada@example.com"


class OlderInput(BaseModel):
    """``OnboardingInput`` as the release before had it: the address and name required."""

    user_id: str
    email: str
    name: str
    email_retry: RetrySpec = RetrySpec()


@workflow.defn(name=USER_ONBOARDING_WORKFLOW, sandboxed=False)
class OlderRelease(UserOnboardingWorkflow):
    """``UserOnboardingWorkflow`` as the release before had it (15bad78): its input and
    the email step's input, verbatim; the step's timeouts and retries are this
    release's (unchanged since)."""

    @workflow.run
    async def run(self, input: OlderInput) -> SendEmailResult:  # type: ignore[override]
        return await self._send(
            SendEmailInput(
                idempotency_key=f"welcome:{input.user_id}",
                template="welcome",
                to=input.email,
                context={"name": input.name, "email": input.email},
                user_id=input.user_id,  # the address and name are read when it is sent
            ),
            input.email_retry,
        )


async def test_a_run_this_release_started_replays_on_the_release_before() -> None:
    """Left out of the input (rather than sent as ""), the address and name would fail
    the release before's input model: its worker could not take the run."""
    name = "user_onboarding_sent_without_address"
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(workflows=[OlderRelease], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_a_run_started_with_the_address_gives_the_step_none_of_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An input of the release before (as an owed ``workflow_starts`` row holds it, JSON)
    started on this release's workflow: the email step is given the account, not the
    address or name in the input (before: ``to`` and the context were the input's)."""
    sent: list[SendEmailInput] = []

    @activity.defn(name="email.send")
    async def send(input: SendEmailInput) -> SendEmailResult:
        sent.append(input)
        return SendEmailResult(message_id="msg_test", provider_message_id="x", already_sent=False)

    env, queue = time_skipping_env, f"onboarding-{uuid4().hex[:6]}"
    owed = OlderInput(user_id="user_1", email=ADDRESS, name="Ada Lovelace").model_dump(mode="json")
    async with suite_worker(
        env.client, task_queue=queue, workflows=[UserOnboardingWorkflow], activities=[send]
    ):
        handle = await env.client.start_workflow(
            USER_ONBOARDING_WORKFLOW, owed, id=f"user-onboarding-{queue}", task_queue=queue
        )
        await handle.result()
        history = await handle.fetch_history()
    assert [(s.to, s.context, s.user_id) for s in sent] == [
        ("", {"name": "", "email": ""}, "user_1")
    ]
    assert sent[0].idempotency_key == "welcome:user_1"
    # Only the start's own input (event 1) still names them.
    for personal in (ADDRESS, "Ada Lovelace"):
        assert [
            e.event_id for e in history.events if personal.encode() in e.SerializeToString()
        ] == [1]
