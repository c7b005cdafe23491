"""``EventDeliveryWorkflows``: the relay's starts, when Temporal cannot be reached."""

from __future__ import annotations

from temporalio.client import Client

from core.settings import Settings
from temporal.clients.connection import TemporalConnection
from temporal.clients.events import CONCURRENT_STARTS, EventDeliveryWorkflows, workflow_id
from workflows.types.events import DeliveryRef


def test_the_workflow_id_names_subscriber_event_and_generation() -> None:
    ref = DeliveryRef(event_id="evt_1", subscriber="crm", generation=2, event_type="x")
    assert workflow_id(ref) == "event-crm-evt_1-2"


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
