"""``EventDeliveryWorkflows``: the relay's starts, when Temporal cannot be reached."""

from __future__ import annotations

from temporalio.client import Client

from core.settings import Settings
from temporal.clients.connection import TemporalConnection
from temporal.clients.events import (
    CONCURRENT_STARTS,
    EventDeliveryWorkflows,
    batch_summary,
    fanout_id,
    workflow_id,
)
from workflows.types.events import (
    BATCH_LIMIT,
    DeliveryBatch,
    DeliveryRef,
    SubscriberDelivery,
    batches_of,
)


def test_the_workflow_id_names_subscriber_event_and_generation() -> None:
    ref = DeliveryRef(event_id="evt_1", subscriber="crm", generation=2, event_type="x")
    assert workflow_id(ref) == "event-crm-evt_1-2"


def test_a_fanout_id_names_the_event_and_stands_for_its_set_of_deliveries() -> None:
    crm, mail = SubscriberDelivery(subscriber="crm"), SubscriberDelivery(subscriber="mail")
    both = fanout_id("evt_1", [crm, mail])
    assert both.startswith("events-evt_1-")
    # The same set in any order: a relay that crashed before recording its start starts
    # the same workflow again, which Temporal refuses as a duplicate.
    assert fanout_id("evt_1", [mail, crm]) == both
    # A subscriber started later (its line was held), or a new generation: another id.
    assert fanout_id("evt_1", [crm]) != both
    assert fanout_id("evt_1", [crm, SubscriberDelivery(subscriber="mail", generation=1)]) != both
    assert fanout_id("evt_2", [crm, mail]) != both
    assert not both.startswith("event-")  # never one of the one-subscriber workflows' ids


def _ref(event_id: str, subscriber: str, generation: int = 0) -> DeliveryRef:
    return DeliveryRef(
        event_id=event_id, subscriber=subscriber, generation=generation, event_type="order.created"
    )


def test_a_batch_id_stands_for_its_set_of_deliveries() -> None:
    crm, mail, other = _ref("evt_1", "crm"), _ref("evt_1", "mail"), _ref("evt_2", "crm")
    batch = DeliveryBatch.of([crm, mail, other]).workflow_id
    assert batch.startswith("events-batch-")
    assert DeliveryBatch.of([other, mail, crm]).workflow_id == batch
    # A delivery fewer, or a new generation of one (a replay): another id.
    assert DeliveryBatch.of([crm, mail]).workflow_id != batch
    assert DeliveryBatch.of([crm, _ref("evt_1", "mail", 1), other]).workflow_id != batch
    assert not batch.startswith("event-")  # never one of the one-subscriber workflows' ids


def test_a_pass_starts_one_workflow_per_batch_of_any_events() -> None:
    refs = [_ref(f"evt_{n}", name) for n in range(BATCH_LIMIT) for name in ("crm", "mail")]
    batches = batches_of(refs)
    assert [b.deliveries for b in batches] == [refs[:BATCH_LIMIT], refs[BATCH_LIMIT:]]
    assert batches_of(refs[:3]) == [DeliveryBatch.of(refs[:3])]
    assert batches_of([]) == []


def test_the_summary_names_each_event_and_its_subscribers() -> None:
    deliveries = [_ref("evt_1", "crm", 1), _ref("evt_1", "mail")]
    assert batch_summary(deliveries) == "order.created evt_1 to crm (generation 1), mail"
    five = [_ref(f"evt_{n}", "crm") for n in range(5)]
    assert batch_summary(five) == (
        "order.created evt_0 to crm; order.created evt_1 to crm; "
        "order.created evt_2 to crm; and 2 more events"
    )


async def test_starts_stop_at_the_first_sign_that_temporal_is_unreachable(
    settings: Settings,
) -> None:
    tries = 0

    async def unreachable() -> Client:
        nonlocal tries
        tries += 1
        raise ConnectionRefusedError("no Temporal here")

    workflows = EventDeliveryWorkflows(TemporalConnection(unreachable), settings)
    batches = [DeliveryBatch.of([_ref(f"evt_{n}", "crm")]) for n in range(5 * CONCURRENT_STARTS)]
    assert await workflows.start_all(batches) == []
    # Only the starts already waiting for the connection tried; the rest gave up at once.
    assert tries <= CONCURRENT_STARTS
