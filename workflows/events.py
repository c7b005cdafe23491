"""``EventDeliveryWorkflow``: one (event, subscriber) delivery, retried, or a dead letter.

The relay starts one per delivery when it reaches the head of its aggregate's line for
that subscriber. ``events.deliver`` runs the handler with retries and backoff; a business
error (a non-retryable ``ApplicationError``) or running out of attempts ends in
``events.dead_letter``, which records the last error.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from workflows.types.events import (
        EVENT_DELIVERY_WORKFLOW,
        DeadLetterInput,
        DeliveryInput,
        DeliveryResult,
        DeliveryStep,
    )

LOCAL_RETRY_THRESHOLD = timedelta(seconds=2)

# Recording a dead letter is one small UPDATE: retried until the database answers.
DEAD_LETTER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


def describe_failure(error: ActivityError) -> str:
    """The last error as a dead letter shows it: ``type: message``."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'Error'}: {cause.message}"
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return str(error)


# Unsandboxed: the workflow is a few deterministic lines over passed-through types, and
# the sandbox's per-run set-up was a tenth of a worker's time per delivery (py-spy).
@workflow.defn(name=EVENT_DELIVERY_WORKFLOW, sandboxed=False)
class EventDeliveryWorkflow:
    @workflow.run
    async def run(self, input: DeliveryInput) -> DeliveryResult:
        retry = input.retry
        what = f"{input.event_type} {input.event_id} to {input.subscriber}"
        try:
            return await workflow.execute_local_activity_method(
                EventActivities.deliver,
                input,
                summary=f"deliver {what}",
                start_to_close_timeout=timedelta(seconds=retry.timeout_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=retry.initial_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=retry.max_interval_seconds),
                    maximum_attempts=retry.max_attempts,
                ),
                # A wait longer than this is a timer in the history, not a sleep in the
                # worker: a backoff survives a restart, and a worker being stopped does
                # not sit out a failing handler's retries (its shutdown waits for them).
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
            )
        except ActivityError as exc:
            error = describe_failure(exc)
        except ApplicationError as exc:
            # A local activity's non-retryable failure reaches the workflow unwrapped.
            error = f"{exc.type or 'Error'}: {exc.message}"
        await workflow.execute_local_activity_method(
            EventActivities.dead_letter,
            DeadLetterInput(**input.model_dump(exclude={"retry"}), error=error),
            summary=f"dead letter: {what}",
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DEAD_LETTER_RETRY,
            local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        )
        return DeliveryResult(outcome=DeliveryStep.FAILED, error=error)
