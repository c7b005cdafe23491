"""``EventDeliveryWorkflow`` branch by branch, on the time-skipping server with stand-in
activities: delivered at once, delivered after retries, a business error dead-lettered
after one attempt, retries run out and dead-lettered with the last error.
``tests/events`` proves the same against the real activities, relay and database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import uuid4

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.events import EventDeliveryWorkflow
from workflows.types.events import (
    DEAD_LETTER_ACTIVITY,
    DELIVER_ACTIVITY,
    DeadLetterInput,
    DeliveryInput,
    DeliveryResult,
    DeliveryRetry,
    DeliveryStep,
)

RETRY = DeliveryRetry(initial_seconds=1, max_interval_seconds=10, max_attempts=4)


@dataclass
class StandIns:
    """``events.deliver`` fails ``failures[event_id]`` times with its error, then succeeds;
    ``events.dead_letter`` records what it was given."""

    failures: dict[str, tuple[int, ApplicationError]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead: list[DeadLetterInput] = field(default_factory=list)

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, input: DeliveryInput) -> DeliveryResult:
        self.attempts[input.event_id] += 1
        times, error = self.failures.get(input.event_id, (0, ApplicationError("unused")))
        if self.attempts[input.event_id] <= times:
            raise error
        return DeliveryResult(outcome=DeliveryStep.DELIVERED)

    @activity.defn(name=DEAD_LETTER_ACTIVITY)
    async def dead_letter(self, input: DeadLetterInput) -> DeliveryResult:
        self.dead.append(input)
        return DeliveryResult(outcome=DeliveryStep.FAILED, error=input.error)


@dataclass
class Deliveries:
    env: WorkflowEnvironment
    standins: StandIns
    queue: str

    async def run(self, event_id: str) -> DeliveryResult:
        return await self.env.client.execute_workflow(
            EventDeliveryWorkflow.run,
            DeliveryInput(
                event_id=event_id,
                subscriber="crm",
                generation=2,
                event_type="order.created",
                retry=RETRY,
            ),
            id=f"event-crm-{event_id}-2",
            task_queue=self.queue,
        )


@pytest.fixture(scope="module")
async def deliveries(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Deliveries]:
    standins = StandIns()
    queue = f"events-{uuid4().hex[:6]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[EventDeliveryWorkflow],
        activities=[standins.deliver, standins.dead_letter],
    ):
        yield Deliveries(time_skipping_env, standins, queue)


def _event() -> str:
    return f"evt_{uuid4().hex[:10]}"


async def test_a_delivery_that_succeeds_is_delivered_and_no_dead_letter(
    deliveries: Deliveries,
) -> None:
    event = _event()
    result = await deliveries.run(event)
    assert result == DeliveryResult(outcome=DeliveryStep.DELIVERED)
    assert deliveries.standins.attempts[event] == 1
    assert event not in [d.event_id for d in deliveries.standins.dead]


async def test_a_transient_failure_is_retried_until_it_succeeds(deliveries: Deliveries) -> None:
    event = _event()
    deliveries.standins.failures[event] = (3, ApplicationError("crm 503", type="HTTPError"))
    result = await deliveries.run(event)
    assert result.outcome is DeliveryStep.DELIVERED
    assert deliveries.standins.attempts[event] == 4
    assert event not in [d.event_id for d in deliveries.standins.dead]
    # Backoffs of 1 and 2 s are waited in the worker; the 4 s one is a timer in the
    # history (past the local retry threshold): it survives a restart, and a worker
    # being stopped does not sit it out.
    history = await deliveries.env.client.get_workflow_handle(
        f"event-crm-{event}-2"
    ).fetch_history()
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [timedelta(seconds=4)]


async def test_a_business_error_is_a_dead_letter_after_one_attempt(
    deliveries: Deliveries,
) -> None:
    event = _event()
    error = ApplicationError("no such customer", type="customer_not_found", non_retryable=True)
    deliveries.standins.failures[event] = (99, error)
    result = await deliveries.run(event)
    assert result == DeliveryResult(
        outcome=DeliveryStep.FAILED, error="customer_not_found: no such customer"
    )
    assert deliveries.standins.attempts[event] == 1
    [dead] = [d for d in deliveries.standins.dead if d.event_id == event]
    assert dead == DeadLetterInput(
        event_id=event,
        subscriber="crm",
        generation=2,
        event_type="order.created",
        error="customer_not_found: no such customer",
    )


async def test_retries_running_out_make_a_dead_letter_with_the_last_error(
    deliveries: Deliveries,
) -> None:
    event = _event()
    deliveries.standins.failures[event] = (99, ApplicationError("crm 503", type="HTTPError"))
    result = await deliveries.run(event)
    assert result == DeliveryResult(outcome=DeliveryStep.FAILED, error="HTTPError: crm 503")
    assert deliveries.standins.attempts[event] == RETRY.max_attempts
    assert [d.error for d in deliveries.standins.dead if d.event_id == event] == [
        "HTTPError: crm 503"
    ]
