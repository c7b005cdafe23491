"""A relay passes at every outbox insert and every finished delivery, several times an
order, and most passes find nothing new to fan out (issue #15). Such a pass claims in its
one transaction, under the relay's lock taken once, instead of a second transaction of
its own; what it finds owed is still claimed and started. A pass that fanned out (or
beat) claims in a transaction after its first has committed, as before."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from services.events.relay import PassResult, RelayService, Starter
from services.events.subscribers import DomainEvent, Subscriber
from tests.events.relay_support import run_id
from workflows.types.events import DeliveryBatch


async def _ignore(event: DomainEvent, session: AsyncSession) -> None:
    return None


@contextmanager
def begun(engine: AsyncEngine) -> Iterator[list[int]]:
    """One entry per transaction begun on ``engine`` inside the block."""
    begins: list[int] = []

    def record(_conn: Any) -> None:
        begins.append(1)

    event.listen(engine.sync_engine, "begin", record)
    try:
        yield begins
    finally:
        event.remove(engine.sync_engine, "begin", record)


async def _quiet_pass(
    relay: RelayService, start: Starter, engine: AsyncEngine
) -> tuple[PassResult, int]:
    """A pass that fanned nothing out (other tests publish meanwhile: tried again until
    one finds nothing new), and the transactions it began."""
    for _ in range(20):
        with begun(engine) as begins:
            result = await relay.run_pass(start)
        if result.dispatched == 0 and result.dropped == 0:
            return result, len(begins)
    raise AssertionError("every pass found something new to fan out")


async def test_a_pass_with_nothing_new_claims_and_starts_in_one_transaction(
    engine: AsyncEngine,
) -> None:
    run = run_id()
    sessions = create_session_factory(engine)
    subscriber = Subscriber(f"quiet_{run}", frozenset({EventType.ORDER_CREATED}), _ignore)
    relay = RelayService(sessions, [subscriber], beat_every=timedelta(hours=1))
    offered: list[DeliveryBatch] = []

    async def start_nothing(batches: Sequence[DeliveryBatch]) -> list[str]:
        offered.extend(batches)
        return []  # Temporal away: the claimed batch is owed to the next pass

    async def start_all(batches: Sequence[DeliveryBatch]) -> list[str]:
        offered.extend(batches)
        return [b.workflow_id for b in batches]

    await relay.run_pass(start_nothing)  # its first beat
    async with transaction(sessions) as session:
        published = await publish(
            session, EventType.ORDER_CREATED, f"agg-{run}", {"orderId": f"agg-{run}"}
        )
    # Fans the event out (two transactions), claims its delivery, cannot start it.
    with begun(engine) as begins:
        await relay.run_pass(start_nothing)
    assert len(begins) == 2, begins
    mine = [b for b in offered if any(d.event_id == published.id for d in b.deliveries)]
    assert len(mine) == 1, offered
    offered.clear()

    # Nothing new: the owed batch is claimed again and started, in one transaction.
    result, transactions = await _quiet_pass(relay, start_all, engine)
    again = [b for b in offered if any(d.event_id == published.id for d in b.deliveries)]
    assert [b.workflow_id for b in again] == [mine[0].workflow_id], offered
    assert result.started >= 1
    # The pass's one transaction, and the one recording what it started.
    assert transactions == 2

    offered.clear()
    result, transactions = await _quiet_pass(relay, start_all, engine)
    assert [b for b in offered if any(d.event_id == published.id for d in b.deliveries)] == []
    assert transactions == (2 if result.started else 1)
