"""The ClickHouse funnel (``windowFunnel``) in chdb, ClickHouse's embedded engine: by hand
on a few people, then against a plain recomputation over generated events."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from chdb import session as chdb_session

from bench.analytics_data import CatalogueProduct, EventGenerator
from services.analytics.clickhouse import (
    ClickHouseAnalyticsRepository,
    ClickHouseEvent,
    FunnelOrder,
    FunnelStepCount,
    funnel_counts,
)

STEPS = ("product_view", "add_to_cart", "checkout_start")
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
_ids = count()


@pytest.fixture
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseAnalyticsRepository]:
    # chdb's Session is not annotated.
    session = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))  # type: ignore[no-untyped-call]
    repository = ClickHouseAnalyticsRepository(session, database=f"shop{next(_ids)}")
    repository.create_tables()
    try:
        yield repository
    finally:
        session.close()  # type: ignore[no-untyped-call]


def _event(
    person: str, event: str, minutes: float, *, user: str | None = None, anon: str | None = None
) -> ClickHouseEvent:
    at = T0 + timedelta(minutes=minutes)
    return ClickHouseEvent(
        id=f"ae_{next(_ids):08d}",
        event=event,
        person_id=person,
        created_at=at,
        received_at=at,
        user_id=user,
        anonymous_id=anon,
    )


def _counts(
    repository: ClickHouseAnalyticsRepository, order: FunnelOrder, window: timedelta
) -> list[int]:
    end = T0 + timedelta(days=1)
    return [s.people for s in funnel_counts(repository, STEPS, T0, end, window, order)]


def test_the_funnel_counts_people_by_hand(repository: ClickHouseAnalyticsRepository) -> None:
    events = [
        # A guest views, signs in, and goes on as the user: one person, all steps.
        _event("anon:g1", "product_view", 10, anon="g1"),
        _event("user_9", "add_to_cart", 20, user="user_9", anon="g1"),
        _event("user_9", "checkout_start", 30, user="user_9"),
        # Adds to cart only after the window (60 minutes here).
        _event("user_2", "product_view", 10, user="user_2"),
        _event("user_2", "add_to_cart", 75, user="user_2"),
        # Entered before the range: not in this funnel.
        _event("user_3", "product_view", -5, user="user_3"),
        _event("user_3", "add_to_cart", 5, user="user_3"),
        # A search between view and cart: fine when ordered, the end when strict.
        _event("user_4", "product_view", 1, user="user_4"),
        _event("user_4", "product_search", 2, user="user_4"),
        _event("user_4", "add_to_cart", 3, user="user_4"),
        # Steps out of order count only as far as the order goes.
        _event("user_5", "add_to_cart", 1, user="user_5"),
        _event("user_5", "product_view", 2, user="user_5"),
    ]
    assert repository.insert_events(events) == len(events)
    repository.link("g1", "user_9", T0 + timedelta(minutes=15))
    hour = timedelta(hours=1)
    assert _counts(repository, "ordered", hour) == [4, 2, 1]
    assert _counts(repository, "strict", hour) == [4, 1, 1]
    assert _counts(repository, "ordered", timedelta(hours=2)) == [4, 3, 1]
    # A retried batch (the same ids again) counts nobody twice.
    repository.insert_events(events)
    repository.insert_events([_event("user_6", "product_view", 1, user="user_6")])
    counts = funnel_counts(repository, STEPS, T0, T0 + timedelta(days=1), hour)
    assert counts == [
        FunnelStepCount("product_view", 5),
        FunnelStepCount("add_to_cart", 2),
        FunnelStepCount("checkout_start", 1),
    ]


def _reference(
    events: Sequence[ClickHouseEvent],
    links: dict[str, str],
    start: datetime,
    end: datetime,
    window: timedelta,
) -> list[int]:
    """Ordered funnel recomputed plainly: for each person, the furthest step reached from
    any entry in [start, end), each next step the first one after the last, in window."""
    by_person: dict[str, list[ClickHouseEvent]] = defaultdict(list)
    for e in events:
        if e.event in STEPS and start <= e.created_at < end + window:
            person = links.get(e.anonymous_id or "", e.person_id)
            by_person[person].append(e)
    reached = [0] * len(STEPS)
    for rows in by_person.values():
        rows.sort(key=lambda e: e.created_at)
        best = 0
        for n, entry in enumerate(rows):
            if entry.event != STEPS[0] or not start <= entry.created_at < end:
                continue
            level = 1
            for e in rows[n + 1 :]:
                if e.created_at > entry.created_at + window or level == len(STEPS):
                    break
                if e.event == STEPS[level]:
                    level += 1
            best = max(best, level)
        for k in range(best):
            reached[k] += 1
    return reached


def test_the_funnel_agrees_with_a_recomputation_over_generated_events(
    repository: ClickHouseAnalyticsRepository,
) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    catalogue = [CatalogueProduct(f"prod_{n}", f"cat_{n % 5}", 900 + n, "USD") for n in range(30)]
    generator = EventGenerator(catalogue, people=300, seed=8, now=now)
    events = [
        ClickHouseEvent(
            id=row[0],
            event=row[1],
            user_id=row[2],
            session_id=row[3],
            anonymous_id=row[4],
            # As recorded before any sign-in rewrote it: the identities resolve it.
            person_id=f"anon:{row[4]}" if row[2] is None and row[4] else row[5],
            properties=row[8],
            created_at=row[9],
            received_at=row[10],
        )
        for row in generator.rows(6000)
    ]
    assert repository.insert_events(events) == 6000
    links = {anonymous_id: user_id for anonymous_id, user_id, _ in generator.identities()}
    for anonymous_id, user_id, linked_at in generator.identities():
        repository.link(anonymous_id, user_id, linked_at)
    assert json.loads(events[0].properties) is not None

    start, end = now - timedelta(days=30), now - timedelta(days=7)
    for window in (timedelta(hours=1), timedelta(days=14)):
        counts = funnel_counts(repository, STEPS, start, end, window)
        expected = _reference(events, links, start, end, window)
        assert [c.people for c in counts] == expected
        assert expected[0] > expected[1] > expected[2] > 0
