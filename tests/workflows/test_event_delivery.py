"""The delivery workflows branch by branch, on the time-skipping server with stand-in
activities: delivered at once, delivered after retries, a business error dead-lettered
after one attempt, retries run out and dead-lettered with the last error; and
``EventFanoutWorkflow``'s subscribers, and ``EventBatchWorkflow``'s deliveries of several
events, each on their own: one retrying or dead-lettered neither delays nor fails the
others.
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

from tests.stack import suite_worker
from workflows.events import EventBatchWorkflow, EventDeliveryWorkflow, EventFanoutWorkflow
from workflows.types.events import (
    DEAD_LETTER_ACTIVITY,
    DELIVER_ACTIVITY,
    BatchInput,
    BatchResult,
    DeadLetterInput,
    DeliveryInput,
    DeliveryRef,
    DeliveryResult,
    DeliveryRetry,
    DeliveryStep,
    FanoutInput,
    FanoutResult,
    SubscriberDelivery,
)

RETRY = DeliveryRetry(initial_seconds=1, max_interval_seconds=10, max_attempts=4)
Key = tuple[str, str]  # (event id, subscriber)


@dataclass
class StandIns:
    """``events.deliver`` fails ``failures[(event_id, subscriber)]`` times with its error,
    then succeeds (noting it in ``delivered``); ``events.dead_letter`` records what it was
    given."""

    failures: dict[Key, tuple[int, ApplicationError]] = field(default_factory=dict)
    attempts: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    delivered: list[Key] = field(default_factory=list)
    dead: list[DeadLetterInput] = field(default_factory=list)

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, input: DeliveryInput) -> DeliveryResult:
        key = (input.event_id, input.subscriber)
        self.attempts[key] += 1
        times, error = self.failures.get(key, (0, ApplicationError("unused")))
        if self.attempts[key] <= times:
            raise error
        self.delivered.append(key)
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

    async def fan_out(self, event_id: str, *subscribers: str) -> FanoutResult:
        return await self.env.client.execute_workflow(
            EventFanoutWorkflow.run,
            FanoutInput(
                event_id=event_id,
                event_type="order.created",
                deliveries=[SubscriberDelivery(subscriber=name) for name in subscribers],
                retry=RETRY,
            ),
            id=f"events-{event_id}",
            task_queue=self.queue,
        )

    async def batch(self, workflow_id: str, *keys: Key) -> BatchResult:
        refs = [
            DeliveryRef(event_id=event, subscriber=name, event_type="order.created")
            for event, name in keys
        ]
        return await self.env.client.execute_workflow(
            EventBatchWorkflow.run,
            BatchInput(deliveries=refs, retry=RETRY),
            id=workflow_id,
            task_queue=self.queue,
        )


@pytest.fixture(scope="module")
async def deliveries(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Deliveries]:
    standins = StandIns()
    queue = f"events-{uuid4().hex[:6]}"
    async with suite_worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[EventDeliveryWorkflow, EventFanoutWorkflow, EventBatchWorkflow],
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
    assert deliveries.standins.attempts[(event, "crm")] == 1
    assert event not in [d.event_id for d in deliveries.standins.dead]


async def test_a_transient_failure_is_retried_until_it_succeeds(deliveries: Deliveries) -> None:
    event = _event()
    deliveries.standins.failures[(event, "crm")] = (
        3,
        ApplicationError("crm 503", type="HTTPError"),
    )
    result = await deliveries.run(event)
    assert result.outcome is DeliveryStep.DELIVERED
    assert deliveries.standins.attempts[(event, "crm")] == 4
    assert event not in [d.event_id for d in deliveries.standins.dead]
    # Every backoff, 1, 2 and 4 s, is a timer in the history (none is waited in the
    # worker): it survives a restart, and a worker being stopped does not sit it out.
    history = await deliveries.env.client.get_workflow_handle(
        f"event-crm-{event}-2"
    ).fetch_history()
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=4)]


async def test_a_business_error_is_a_dead_letter_after_one_attempt(
    deliveries: Deliveries,
) -> None:
    event = _event()
    error = ApplicationError("no such customer", type="customer_not_found", non_retryable=True)
    deliveries.standins.failures[(event, "crm")] = (99, error)
    result = await deliveries.run(event)
    assert result == DeliveryResult(
        outcome=DeliveryStep.FAILED, error="customer_not_found: no such customer"
    )
    assert deliveries.standins.attempts[(event, "crm")] == 1
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
    deliveries.standins.failures[(event, "crm")] = (
        99,
        ApplicationError("crm 503", type="HTTPError"),
    )
    result = await deliveries.run(event)
    assert result == DeliveryResult(outcome=DeliveryStep.FAILED, error="HTTPError: crm 503")
    assert deliveries.standins.attempts[(event, "crm")] == RETRY.max_attempts
    assert [d.error for d in deliveries.standins.dead if d.event_id == event] == [
        "HTTPError: crm 503"
    ]


async def _timers(env: WorkflowEnvironment, workflow_id: str) -> list[timedelta]:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_a_fanout_delivers_every_subscriber_once(deliveries: Deliveries) -> None:
    event = _event()
    result = await deliveries.fan_out(event, "crm", "mail", "search")
    delivered = DeliveryResult(outcome=DeliveryStep.DELIVERED)
    assert result == FanoutResult(
        outcomes={"crm": delivered, "mail": delivered, "search": delivered}
    )
    for name in ("crm", "mail", "search"):
        assert deliveries.standins.attempts[(event, name)] == 1


async def test_a_retrying_subscriber_delays_none_of_the_others(deliveries: Deliveries) -> None:
    event = _event()
    deliveries.standins.failures[(event, "crm")] = (
        3,
        ApplicationError("crm 503", type="HTTPError"),
    )
    result = await deliveries.fan_out(event, "crm", "mail")
    assert {name: r.outcome for name, r in result.outcomes.items()} == {
        "crm": DeliveryStep.DELIVERED,
        "mail": DeliveryStep.DELIVERED,
    }
    assert deliveries.standins.attempts[(event, "crm")] == 4
    assert deliveries.standins.attempts[(event, "mail")] == 1
    ours = [key for key in deliveries.standins.delivered if key[0] == event]
    assert ours == [(event, "mail"), (event, "crm")], "mail waited for crm's retries"
    # crm's own backoff, as in its own workflow: 1, 2 and 4 s, each a timer.
    assert await _timers(deliveries.env, f"events-{event}") == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=4),
    ]


async def test_a_dead_letter_fails_only_its_own_subscriber(deliveries: Deliveries) -> None:
    event = _event()
    refused = ApplicationError("no such customer", type="customer_not_found", non_retryable=True)
    deliveries.standins.failures[(event, "crm")] = (99, refused)
    deliveries.standins.failures[(event, "search")] = (
        99,
        ApplicationError("index down", type="HTTPError"),
    )
    result = await deliveries.fan_out(event, "crm", "mail", "search")
    assert result == FanoutResult(
        outcomes={
            "crm": DeliveryResult(
                outcome=DeliveryStep.FAILED, error="customer_not_found: no such customer"
            ),
            "mail": DeliveryResult(outcome=DeliveryStep.DELIVERED),
            "search": DeliveryResult(outcome=DeliveryStep.FAILED, error="HTTPError: index down"),
        }
    )
    assert deliveries.standins.attempts[(event, "crm")] == 1
    assert deliveries.standins.attempts[(event, "search")] == RETRY.max_attempts
    dead = {d.subscriber: d for d in deliveries.standins.dead if d.event_id == event}
    assert set(dead) == {"crm", "search"}
    assert dead["crm"] == DeadLetterInput(
        event_id=event,
        subscriber="crm",
        generation=0,
        event_type="order.created",
        error="customer_not_found: no such customer",
    )


async def test_a_batch_delivers_every_event_to_its_subscribers_each_on_its_own(
    deliveries: Deliveries,
) -> None:
    first, second, third = _event(), _event(), _event()
    deliveries.standins.failures[(first, "crm")] = (
        3,
        ApplicationError("crm 503", type="HTTPError"),
    )
    refused = ApplicationError("no such customer", type="customer_not_found", non_retryable=True)
    deliveries.standins.failures[(second, "crm")] = (99, refused)
    batch = f"events-batch-{first}"
    result = await deliveries.batch(
        batch, (first, "crm"), (first, "mail"), (second, "crm"), (third, "mail")
    )
    delivered = DeliveryResult(outcome=DeliveryStep.DELIVERED)
    assert result == BatchResult(
        outcomes={
            first: {"crm": delivered, "mail": delivered},
            second: {
                "crm": DeliveryResult(
                    outcome=DeliveryStep.FAILED, error="customer_not_found: no such customer"
                )
            },
            third: {"mail": delivered},
        }
    )
    assert deliveries.standins.attempts[(first, "crm")] == 4
    assert deliveries.standins.attempts[(second, "crm")] == 1
    ours = [key for key in deliveries.standins.delivered if key[0] in (first, third)]
    assert ours[-1] == (first, "crm"), "the others waited for crm's retries"
    assert [d.event_id for d in deliveries.standins.dead if d.event_id in (first, third)] == []
    assert [
        (d.event_id, d.subscriber) for d in deliveries.standins.dead if d.event_id == second
    ] == [(second, "crm")]
    # crm's own backoff, as in a workflow of its own: 1, 2 and 4 s, each a timer.
    assert await _timers(deliveries.env, batch) == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=4),
    ]
