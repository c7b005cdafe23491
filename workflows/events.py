"""Event delivery workflows: each (event, subscriber) delivery retried, or a dead letter.

``EventBatchWorkflow`` is what the relay starts: one per relay pass (per
``BATCH_LIMIT`` deliveries), for every delivery whose line (aggregate, subscriber)
reached it in the pass, whatever its event. Each delivery runs beside the others
(``deliver_one``): its own local activity, retries, backoff and dead letter, so a failing
delivery delays and fails only itself (and, through the relay's head-of-line rule, the
later events of its own line). ``EventFanoutWorkflow`` (one event, what the relay started
before) and ``EventDeliveryWorkflow`` (one subscriber, before that) stay registered for
the runs still in flight and their recorded histories.

``deliver_one``: ``events.deliver`` runs the handler with retries and backoff; a business
error (a non-retryable ``ApplicationError``) or running out of attempts ends in
``events.dead_letter``, which records the last error.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from workflows.types.events import (
        EVENT_BATCH_WORKFLOW,
        EVENT_DELIVERY_WORKFLOW,
        EVENT_FANOUT_WORKFLOW,
        BatchInput,
        BatchResult,
        DeadLetterInput,
        DeliveryInput,
        DeliveryRef,
        DeliveryResult,
        DeliveryStep,
        FanoutInput,
        FanoutResult,
    )


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


async def deliver_one(input: DeliveryInput) -> DeliveryResult:
    """One subscriber's delivery: the handler with retries, else its dead letter.

    The local activities' summaries name the subscriber, so an operator reading a
    history (or a fan-out's) sees whose delivery each attempt and dead letter is.
    """
    retry = input.retry
    what = f"{input.event_type} {input.event_id} to {input.subscriber}"
    try:
        return await workflow.execute_local_activity_method(
            EventActivities.deliver,
            input,
            summary=f"deliver {what}",
            start_to_close_timeout=retry.timeout,
            retry_policy=retry.policy(),
            # Every backoff is a timer in the history, not a sleep in the worker: it
            # survives a restart, a worker being stopped does not sit out a failing
            # handler's retries, and no attempt's timer outlives it (sdk-rust#1454,
            # ``temporal/local_retries.py``).
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


# Unsandboxed: the workflow is a few deterministic lines over passed-through types, and
# the sandbox's per-run set-up was a tenth of a worker's time per delivery (py-spy).
@workflow.defn(name=EVENT_FANOUT_WORKFLOW, sandboxed=False)
class EventFanoutWorkflow:
    """One event to several subscribers, each delivery on its own (``deliver_one``)."""

    def __init__(self) -> None:
        self._outcomes: dict[str, DeliveryResult] = {}
        self._delivering: list[str] = []

    @workflow.run
    async def run(self, input: FanoutInput) -> FanoutResult:
        self._delivering = [d.subscriber for d in input.deliveries]
        self._show_progress()
        await asyncio.gather(*(self._deliver(input.delivery(d)) for d in input.deliveries))
        return FanoutResult(outcomes=dict(self._outcomes))

    async def _deliver(self, input: DeliveryInput) -> None:
        result = await deliver_one(input)
        self._outcomes[input.subscriber] = result
        self._delivering.remove(input.subscriber)
        self._show_progress()

    def _show_progress(self) -> None:
        workflow.set_current_details(progress(self._delivering, self._outcomes))


def progress(delivering: list[str], outcomes: dict[str, DeliveryResult]) -> str:
    """The UI's current details: the deliveries still running (one listed long after
    the others finished is the one retrying), how the others ended, a dead letter with
    its error."""
    done = [
        f"{name} {result.outcome}" + (f" ({result.error})" if result.error else "")
        for name, result in sorted(outcomes.items())
        if result.outcome is not DeliveryStep.SKIPPED
    ]
    skipped = sorted(n for n, r in outcomes.items() if r.outcome is DeliveryStep.SKIPPED)
    parts = []
    if delivering:
        parts.append("delivering to " + ", ".join(delivering))
    if done:
        parts.append("; ".join(done))
    if skipped:
        parts.append("skipped (already done or replayed): " + ", ".join(skipped))
    return "\n".join(parts)


# Unsandboxed, as above.
@workflow.defn(name=EVENT_BATCH_WORKFLOW, sandboxed=False)
class EventBatchWorkflow:
    """A relay pass's deliveries, of any events, each on its own (``deliver_one``)."""

    def __init__(self) -> None:
        self._outcomes: dict[str, DeliveryResult] = {}
        self._delivering: list[str] = []

    @workflow.run
    async def run(self, input: BatchInput) -> BatchResult:
        one_event = len({d.event_id for d in input.deliveries}) == 1
        labelled = [(self._label(d, one_event), d) for d in input.deliveries]
        self._delivering = [label for label, _ in labelled]
        workflow.set_current_details(progress(self._delivering, self._outcomes))
        results = await asyncio.gather(
            *(self._deliver(label, input.delivery(d)) for label, d in labelled)
        )
        outcomes: dict[str, dict[str, DeliveryResult]] = {}
        for ref, result in zip(input.deliveries, results, strict=True):
            outcomes.setdefault(ref.event_id, {})[ref.subscriber] = result
        return BatchResult(outcomes=outcomes)

    @staticmethod
    def _label(ref: DeliveryRef, one_event: bool) -> str:
        """How the UI names a delivery: its subscriber, with its event when the batch
        has several."""
        return ref.subscriber if one_event else f"{ref.subscriber} of {ref.event_id}"

    async def _deliver(self, label: str, input: DeliveryInput) -> DeliveryResult:
        result = await deliver_one(input)
        self._outcomes[label] = result
        self._delivering.remove(label)
        workflow.set_current_details(progress(self._delivering, self._outcomes))
        return result


# Unsandboxed, as above.
@workflow.defn(name=EVENT_DELIVERY_WORKFLOW, sandboxed=False)
class EventDeliveryWorkflow:
    """One (event, subscriber) delivery: what the relay started before the fan-out."""

    @workflow.run
    async def run(self, input: DeliveryInput) -> DeliveryResult:
        return await deliver_one(input)
