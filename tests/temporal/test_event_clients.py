"""``EventDeliveryWorkflows``: the relay's starts, when Temporal cannot be reached."""

from __future__ import annotations

from temporalio.client import Client

from core.settings import Settings
from temporal.clients.connection import TemporalConnection
from temporal.clients.events import (
    CONCURRENT_STARTS,
    EventDeliveryWorkflows,
    by_event,
    fanout_id,
    fanout_summary,
    workflow_id,
)
from workflows.types.events import DeliveryRef, SubscriberDelivery


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


def test_the_summary_names_the_event_and_every_subscriber() -> None:
    deliveries = [
        SubscriberDelivery(subscriber="crm", generation=1),
        SubscriberDelivery(subscriber="mail"),
    ]
    assert fanout_summary("evt_1", "order.created", deliveries) == (
        "order.created evt_1 to crm (generation 1), mail"
    )


def test_a_pass_starts_one_workflow_per_event() -> None:
    refs = [
        DeliveryRef(event_id=event, subscriber=name, event_type="order.created")
        for event, name in [("evt_1", "crm"), ("evt_1", "mail"), ("evt_2", "crm")]
    ]
    assert by_event(refs) == [refs[:2], refs[2:]]


async def test_starts_stop_at_the_first_sign_that_temporal_is_unreachable(
    settings: Settings,
) -> None:
    tries = 0

    async def unreachable() -> Client:
        nonlocal tries
        tries += 1
        raise ConnectionRefusedError("no Temporal here")

    workflows = EventDeliveryWorkflows(TemporalConnection(unreachable), settings)
    refs = [
        DeliveryRef(event_id=f"evt_{n}", subscriber="crm", event_type="order.created")
        for n in range(5 * CONCURRENT_STARTS)
    ]
    assert await workflows.start_all(refs) == []
    # Only the starts already waiting for the connection tried; the rest gave up at once.
    assert tries <= CONCURRENT_STARTS
