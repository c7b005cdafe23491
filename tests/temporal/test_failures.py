"""A retrying activity's last failure, as the operator reads it (the UI's *Pending
Activities*, ``temporal workflow describe``): the provider's answer, not the server's
"Failure exceeds size limit." (``temporal/failures.py``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

from temporalio import activity, workflow
from temporalio.api.failure.v1 import Failure
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from core.settings import Settings
from integrations.email.sender import EmailProviderUnavailable
from temporal.client import connect
from temporal.errors import application_errors
from temporal.failures import FAILURE_BYTES, fit
from tests.stack import suite_worker

ANSWER = 'SendGrid answered 503: {"errors":[{"message":"Service Unavailable"}]}'


class HTTPError(Exception):
    pass


def _deep(depth: int) -> None:
    """A client library's call, many frames down, failing as an HTTP client does (two
    functions in turn: a traceback folds a frame repeated in a row into one line)."""
    if depth == 0:
        raise HTTPError("HTTP Error 503: Service Unavailable " + "x" * 300)
    _deeper(depth - 1)


def _deeper(depth: int) -> None:
    _deep(depth)


def _provider_call() -> None:
    try:
        _deep(25)
    except HTTPError as exc:
        raise EmailProviderUnavailable(ANSWER) from exc


@activity.defn(name="failures.send")
async def send() -> None:
    with application_errors():
        _provider_call()


@workflow.defn(name="FailuresSend", sandboxed=False)
class FailuresSend:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            "failures.send",
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=30)),
        )


async def test_a_retrying_activity_shows_the_providers_answer_as_its_last_failure(
    temporal_env: WorkflowEnvironment,
) -> None:
    target = temporal_env.client.service_client.config.target_host
    client = await connect(Settings(temporal_address=target))
    queue = f"failures-{uuid4()}"
    async with suite_worker(
        client,
        task_queue=queue,
        workflows=[FailuresSend],
        activities=[send],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            FailuresSend.run, id=f"failures-{uuid4()}", task_queue=queue
        )
        try:
            for _ in range(200):
                pending = (await handle.describe()).raw_description.pending_activities
                if pending and pending[0].HasField("last_failure"):
                    break
                await asyncio.sleep(0.05)
            last = pending[0].last_failure
            assert last.message == ANSWER
            assert last.application_failure_info.type == "email_provider_unavailable"
            assert last.cause.message == ANSWER
            assert last.cause.cause.message.startswith("HTTP Error 503: Service Unavailable")
            assert "_provider_call" in last.cause.stack_trace
        finally:
            await handle.terminate()


def test_fit_keeps_every_message_and_the_innermost_frames() -> None:
    failure = Failure(message="top", stack_trace="outer frame\n" * 300)
    failure.cause.message = "cause"
    failure.cause.stack_trace = "caller\n" * 400 + "where it was raised"
    fit(failure)
    assert failure.ByteSize() <= FAILURE_BYTES
    assert (failure.message, failure.cause.message) == ("top", "cause")
    assert failure.cause.stack_trace.endswith("where it was raised")


def test_fit_leaves_a_small_failure_as_it_is() -> None:
    failure = Failure(message="top", stack_trace="a frame")
    failure.cause.message = "cause"
    before = failure.SerializeToString()
    fit(failure)
    assert failure.SerializeToString() == before
