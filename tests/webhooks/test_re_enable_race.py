"""An event the relay records while staff re-enable its endpoint: the skip decision and
the re-enable are serialised on the endpoint's row, so one ``retry-failed`` after the
``PATCH`` answered recovers everything skipped. Both transactions committed for real
and interleaved at their row locks (``tests.lock_waits``), not by sleeping."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.db import SessionFactory, create_session_factory, transaction
from core.settings import Settings
from models.webhooks import WebhookEndpointUpdate
from services.events.handlers.webhooks import webhooks_subscriber
from services.events.subscribers import DomainEvent, Subscriber
from services.webhooks.deliveries import WebhookDeliveryAdmin
from services.webhooks.endpoints import WebhookEndpointService
from temporal.clients.connection import TemporalConnection
from temporal.clients.webhooks import WebhookWorkflows
from tests.lock_waits import waiting_on_locks
from tests.webhooks.rows import delivery_of, disabled_endpoint, order_created

# A hang guard only: each wait ends as soon as the other side has moved.
GUARD_SECONDS = 30
RACE = "https://hooks.example.com/race"


class _RelayDelivery:
    """The relay's delivery transaction of one event: the handler runs, then the
    transaction waits for ``commit`` (so the test decides what happens before it)."""

    def __init__(self, sessions: SessionFactory, subscriber: Subscriber, event: DomainEvent):
        self.handled = asyncio.Event()
        self.commit = asyncio.Event()
        self.task = asyncio.create_task(self._run(sessions, subscriber, event))

    async def _run(
        self, sessions: SessionFactory, subscriber: Subscriber, event: DomainEvent
    ) -> None:
        async with transaction(sessions) as session:
            await subscriber.handle(event, session)
            self.handled.set()
            await self.commit.wait()

    async def wait_handled(self) -> None:
        # The task too: a handler that raised would never set ``handled``.
        await asyncio.wait_for(
            asyncio.wait(
                [self.task, asyncio.ensure_future(self.handled.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            ),
            GUARD_SECONDS,
        )
        if self.task.done():
            self.task.result()

    async def committed(self) -> None:
        self.commit.set()
        await asyncio.wait_for(self.task, GUARD_SECONDS)


async def test_an_event_recorded_during_the_re_enable_is_sent_not_skipped(
    engine: AsyncEngine, settings: Settings, temporal_client: Client, made: list[str]
) -> None:
    """Before, the relay read the endpoint disabled before the ``PATCH`` committed and
    inserted its delivery ``skipped`` after: staff's ``retry-failed`` right after the
    ``PATCH`` did not see it (not committed yet), and it stayed skipped until someone
    called ``retry-failed`` again. Now the relay reads the endpoint under a lock the
    ``PATCH`` holds, so it sees it enabled and sends the event."""
    sessions = create_session_factory(engine)
    endpoint_id = await disabled_endpoint(sessions, RACE)
    made.append(endpoint_id)
    workflows = WebhookWorkflows(TemporalConnection.of(temporal_client), settings)
    event = order_created()

    async with transaction(sessions) as session:  # PATCH {"enabled": true}
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
        relay = _RelayDelivery(sessions, webhooks_subscriber(workflows), event)
        # The relay has reached the endpoint's row, which this transaction holds.
        await waiting_on_locks(engine, 1, query_like="%webhook_%")
    await relay.wait_handled()
    # Staff recover what the endpoint missed, the PATCH answered.
    async with transaction(sessions) as session:
        recovered, _ = await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
    await relay.committed()

    row = await delivery_of(sessions, event.id, endpoint_id)
    assert (row.status, row.generation, row.last_error) == ("pending", 0, None)
    assert recovered.retried == 0
    # Nothing is left for a second call to find.
    async with transaction(sessions) as session:
        again, _ = await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
    assert again.retried == 0


async def test_an_event_skipped_before_the_re_enable_is_recovered_by_one_call(
    engine: AsyncEngine, settings: Settings, temporal_client: Client, made: list[str]
) -> None:
    """The other order: the relay decided to skip first, so the ``PATCH`` waits for the
    relay's commit, and the one ``retry-failed`` after it finds the skipped delivery."""
    sessions = create_session_factory(engine)
    endpoint_id = await disabled_endpoint(sessions, RACE)
    made.append(endpoint_id)
    workflows = WebhookWorkflows(TemporalConnection.of(temporal_client), settings)
    event = order_created()

    relay = _RelayDelivery(sessions, webhooks_subscriber(workflows), event)
    await relay.wait_handled()

    async def re_enable() -> None:
        async with transaction(sessions) as session:
            await WebhookEndpointService(session).update(
                endpoint_id, WebhookEndpointUpdate(enabled=True)
            )

    patch = asyncio.create_task(re_enable())
    await waiting_on_locks(engine, 1, query_like="%webhook_endpoints%")
    assert not patch.done()
    await relay.committed()
    await asyncio.wait_for(patch, GUARD_SECONDS)

    async with transaction(sessions) as session:
        recovered, starts = await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
    assert recovered.retried == 1
    assert [s.workflow_id for s in starts] == [f"webhook-{event.id}-{endpoint_id}-1"]
    row = await delivery_of(sessions, event.id, endpoint_id)
    assert (row.status, row.generation) == ("pending", 1)
