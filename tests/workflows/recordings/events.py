"""The event relay's recordings (one delivery, a fan-out, a relay pass's batch), and
the stand-ins of the delivery and dead-letter activities."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflows.recordings import recording
from workflows.events import EventBatchWorkflow, EventDeliveryWorkflow, EventFanoutWorkflow
from workflows.types.events import (
    DEAD_LETTER_ACTIVITY,
    DELIVER_ACTIVITY,
    BatchInput,
    DeadLetterInput,
    DeliveryInput,
    DeliveryRef,
    DeliveryResult,
    DeliveryStep,
    FanoutInput,
    SubscriberDelivery,
)

DEAD_EVENT = "evt_recorded_dead"
# A fan-out of three whose crm delivery is a dead letter, the others delivered.
FANOUT_DEAD_EVENT = "evt_recorded_fanout_dead"


@activity.defn(name=DELIVER_ACTIVITY)
async def deliver_event(input: DeliveryInput) -> DeliveryResult:
    if input.event_id == DEAD_EVENT or (
        input.event_id == FANOUT_DEAD_EVENT and input.subscriber == "crm"
    ):
        raise ApplicationError("no such customer", type="customer_not_found", non_retryable=True)
    return DeliveryResult(outcome=DeliveryStep.DELIVERED)


@activity.defn(name=DEAD_LETTER_ACTIVITY)
async def dead_letter_event(input: DeadLetterInput) -> DeliveryResult:
    return DeliveryResult(outcome=DeliveryStep.FAILED, error=input.error)


async def _deliver(env: WorkflowEnvironment, queue: str, event_id: str) -> str:
    ref = {"event_id": event_id, "subscriber": "crm", "event_type": "order.created"}
    await env.client.execute_workflow(
        EventDeliveryWorkflow.run,
        DeliveryInput(**ref),
        id=f"event-crm-{event_id}-0",
        task_queue=queue,
    )
    return f"event-crm-{event_id}-0"


@recording("event_delivery_delivered")
async def event_delivered(env: WorkflowEnvironment, queue: str) -> str:
    return await _deliver(env, queue, "evt_recorded_ok")


@recording("event_delivery_dead_letter")
async def event_dead_letter(env: WorkflowEnvironment, queue: str) -> str:
    return await _deliver(env, queue, DEAD_EVENT)


async def _fan_out(env: WorkflowEnvironment, queue: str, event_id: str) -> str:
    subscribers = ["crm", "customer_emails", "lifetime_value"]
    await env.client.execute_workflow(
        EventFanoutWorkflow.run,
        FanoutInput(
            event_id=event_id,
            event_type="order.created",
            deliveries=[SubscriberDelivery(subscriber=name) for name in subscribers],
        ),
        id=f"events-{event_id}",
        task_queue=queue,
    )
    return f"events-{event_id}"


@recording("event_fanout_delivered")
async def event_fanout_delivered(env: WorkflowEnvironment, queue: str) -> str:
    return await _fan_out(env, queue, "evt_recorded_fanout_ok")


@recording("event_fanout_dead_letter")
async def event_fanout_dead_letter(env: WorkflowEnvironment, queue: str) -> str:
    return await _fan_out(env, queue, FANOUT_DEAD_EVENT)


@recording("event_batch_with_a_dead_letter")
async def event_batch(env: WorkflowEnvironment, queue: str) -> str:
    """A relay pass's batch: two events, one of whose crm deliveries is a dead letter."""
    refs = [
        DeliveryRef(event_id=event, subscriber=name, event_type="order.created")
        for event, name in [
            ("evt_recorded_batch_ok", "crm"),
            ("evt_recorded_batch_ok", "customer_emails"),
            (FANOUT_DEAD_EVENT, "crm"),
            (FANOUT_DEAD_EVENT, "lifetime_value"),
        ]
    ]
    await env.client.execute_workflow(
        EventBatchWorkflow.run,
        BatchInput(deliveries=refs),
        id="events-batch-recorded",
        task_queue=queue,
    )
    return "events-batch-recorded"
