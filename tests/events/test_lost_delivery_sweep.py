"""The lost-delivery sweep (``RelayService.restart_lost``): however many deliveries are
alive ahead of a lost one, it finds the lost one. It pages through every candidate, asks
about each workflow once, and is bounded by the workflows it asks about, going on where
it stopped at its next sweep. Temporal is a stand-in here (which workflows run is the
test's to say); the rows are real, in a transaction rolled back after the test, written
at an instant long past so that no other test's delivery is old enough to be swept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.db import SessionFactory
from models.base import utcnow
from models.events import DeliveryStatus
from services.events.relay import RelayService, SweepResult
from tests.events.admin.seeding import Seeder
from workflows.types.events import StartedDelivery

INSTANT = datetime(2001, 1, 1, tzinfo=UTC)
PAGE = 2


def _since_the_instant() -> timedelta:
    return utcnow() - (INSTANT + timedelta(seconds=1))


class Temporal:
    """Which workflows run: all but the ``gone``; and which were asked about."""

    def __init__(self, gone: set[str]) -> None:
        self.gone = gone
        self.asked: list[str | None] = []

    async def is_running(self, delivery: StartedDelivery) -> bool:
        self.asked.append(delivery.workflow_id)
        return delivery.workflow_id not in self.gone


async def _seed(seeder: Seeder, subscribers: list[str]) -> tuple[str, str]:
    """An event of ``INSTANT`` whose deliveries, started then, one workflow delivers;
    the event's id and the workflow's."""
    event = await seeder.event(
        deliveries=dict.fromkeys(subscribers, DeliveryStatus.PENDING),
        age=utcnow() - INSTANT,
    )
    row = await seeder.delivery(event.id, subscribers[0])
    assert row.workflow_id is not None
    return event.id, row.workflow_id


async def test_a_lost_delivery_behind_pages_of_live_ones_is_restarted(
    db_sessions: SessionFactory,
) -> None:
    """Five live deliveries of one batch ahead of a lost one, two to a page: the sweep
    reads all three pages, asks about each workflow once, restarts the lost one only.
    (Before, it read the 100 oldest and stopped: a hundred alive hid every lost one.)"""
    seeder = Seeder(db_sessions)
    alive_subscribers = [f"sweep-alive-{i}" for i in range(5)]
    alive_event, alive = await _seed(seeder, alive_subscribers)
    lost_event, lost = await _seed(seeder, ["sweep-lost"])
    temporal = Temporal(gone={lost})
    relay = RelayService(db_sessions, [])

    result = await relay.restart_lost(_since_the_instant(), temporal.is_running, page=PAGE)

    assert result == SweepResult(asked=2, restarted=1, finished=True)
    assert temporal.asked == [alive, lost]
    for name in alive_subscribers:
        untouched = await seeder.delivery(alive_event, name)
        assert untouched.generation == 0
        assert untouched.started_at is not None
    restarted = await seeder.delivery(lost_event, "sweep-lost")
    assert (restarted.status, restarted.generation) == (DeliveryStatus.PENDING, 1)
    assert restarted.started_at is None  # the next pass starts it afresh


async def test_a_sweep_stops_after_its_asks_and_the_next_goes_on_from_there(
    db_sessions: SessionFactory,
) -> None:
    """Three live batches ahead of a lost one, two workflows asked per sweep: the first
    sweep asks about two live ones and stops; the second goes on from the third and
    restarts the lost one; the third starts from the beginning again."""
    seeder = Seeder(db_sessions)
    alive = [(await _seed(seeder, [f"sweep-alive-{i}"]))[1] for i in range(3)]
    lost_event, lost = await _seed(seeder, ["sweep-lost"])
    temporal = Temporal(gone={lost})
    relay = RelayService(db_sessions, [])

    async def sweep() -> SweepResult:
        return await relay.restart_lost(
            _since_the_instant(), temporal.is_running, page=PAGE, asks=2
        )

    assert await sweep() == SweepResult(asked=2, restarted=0, finished=False)
    assert temporal.asked == alive[:2]
    assert (await seeder.delivery(lost_event, "sweep-lost")).generation == 0
    assert await sweep() == SweepResult(asked=2, restarted=1, finished=True)
    assert temporal.asked == [*alive, lost]
    assert (await seeder.delivery(lost_event, "sweep-lost")).generation == 1
    assert await sweep() == SweepResult(asked=2, restarted=0, finished=False)
    assert temporal.asked == [*alive, lost, *alive[:2]]


async def test_a_sweep_that_cannot_ask_goes_on_from_there_next_time(
    db_sessions: SessionFactory,
) -> None:
    """Temporal away at the second workflow: nothing is restarted, and the next sweep
    asks about that workflow first, not the ones it had already been told about."""
    seeder = Seeder(db_sessions)
    alive = [(await _seed(seeder, [f"sweep-alive-{i}"]))[1] for i in range(2)]
    lost_event, lost = await _seed(seeder, ["sweep-lost"])
    temporal = Temporal(gone={lost})
    relay = RelayService(db_sessions, [])
    away = True

    async def flaky(delivery: StartedDelivery) -> bool:
        if away and delivery.workflow_id == alive[1]:
            raise ConnectionError("Temporal is away")
        return await temporal.is_running(delivery)

    result = await relay.restart_lost(_since_the_instant(), flaky, page=PAGE)
    assert result == SweepResult(asked=1, restarted=0, finished=False)
    away = False
    result = await relay.restart_lost(_since_the_instant(), flaky, page=PAGE)
    assert result == SweepResult(asked=2, restarted=1, finished=True)
    assert temporal.asked == [alive[0], alive[1], lost]
    assert (await seeder.delivery(lost_event, "sweep-lost")).generation == 1
