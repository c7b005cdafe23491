"""The links from each event to its person's previous event (``links.py``), kept by the
hourly rollup: equal to a recomputation from the raw events after a rebuild, after a
late event and after a guest's events are given to a user at sign-in, events of one
instant in id order. And the funnels that read them (``strict``, step windows) equal to
the walk: with every link current, and with people whose links are pending (events
received since the watermark, which the funnel probes as before).

The events live in June 1999 (no other test writes there) and are received two hours
back, well before the watermark a rebuild sets, unless a test says otherwise."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from models.analytics import AnalyticsEvent
from models.base import utcnow
from services.analytics import AnalyticsRepository
from services.analytics.links import LinkRepository
from services.analytics.rollups import OVERLAP, RollupRepository, RollupService
from tests.analytics.test_funnel_paths import agreed, figures

T0 = datetime(1999, 6, 7, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
HOURS = [T0 + n * H for n in range(4 * 24)]
STEPS = "product_view,add_to_cart,checkout_start,payment_start"

RECOMPUTED = """
SELECT id, person_id, event, created_at,
  lag(event) OVER w, lag(created_at) OVER w, lag(id) OVER w
FROM analytics_events WHERE person_id = ANY(:people)
WINDOW w AS (PARTITION BY person_id ORDER BY created_at, id)
"""
STORED = """
SELECT id, person_id, event, created_at, prev_event, prev_at, prev_id
FROM analytics_event_links WHERE person_id = ANY(:people) OR id = ANY(:ids)
"""


def event(
    person: str, name: str, at: datetime, event_id: str, *, received_at: datetime | None = None
) -> AnalyticsEvent:
    return AnalyticsEvent(
        id=event_id,
        event=name,
        person_id=person,
        created_at=at,
        properties={},
        received_at=received_at or utcnow() - 2 * H,
    )


async def _rows(session: AsyncSession, sql: str, **params: Any) -> set[tuple[Any, ...]]:
    result = await session.exec(text(sql), params=params)  # type: ignore[call-overload]
    return {tuple(r) for r in result.all()}


async def links_match_the_events(sessions: SessionFactory, people: list[str]) -> int:
    """The stored links of ``people``'s events (and of any event they hold now) equal a
    recomputation from the raw events; returns how many."""
    async with sessions() as session:
        expected = await _rows(session, RECOMPUTED, people=people)
        ids = [row[0] for row in expected]
        assert await _rows(session, STORED, people=people, ids=ids) == expected
    return len(expected)


async def test_links_follow_late_events_sign_ins_and_ties(db_sessions: SessionFactory) -> None:
    ann, bob, user, guest = "lk-ann", "lk-bob", "user_01LINKS00000000000000001", "anon:lk-guest"
    at = T0 + 2 * H
    async with db_sessions() as session:
        session.add_all(
            [
                event(ann, "product_view", at, "ae_lk_ann_1"),
                # Two at one instant: the smaller id came first.
                event(ann, "checkout_start", at + H, "ae_lk_ann_3"),
                event(ann, "add_to_cart", at + H, "ae_lk_ann_2"),
                event(ann, "payment_start", at + 2 * H, "ae_lk_ann_4"),
                event(bob, "product_view", at, "ae_lk_bob_1"),
                event(guest, "product_view", at + 10 * M, "ae_lk_guest_1"),
                event(guest, "add_to_cart", at + 40 * M, "ae_lk_guest_2"),
                event(user, "product_search", at + 20 * M, "ae_lk_user_1"),
                event(user, "checkout_start", at + 50 * M, "ae_lk_user_2"),
            ]
        )
        await session.commit()
    rollups = RollupService(db_sessions)
    await rollups.rebuild(HOURS)
    assert await links_match_the_events(db_sessions, [ann, bob, user, guest]) == 9
    async with db_sessions() as session:
        prev = await _rows(
            session,
            "SELECT id, prev_id FROM analytics_event_links WHERE person_id = :p",
            p=ann,
        )
    assert prev == {
        ("ae_lk_ann_1", None),
        ("ae_lk_ann_2", "ae_lk_ann_1"),
        ("ae_lk_ann_3", "ae_lk_ann_2"),
        ("ae_lk_ann_4", "ae_lk_ann_3"),
    }

    # A late event (received now, an hour back in time) between ann's cart and payment,
    # and the guest signing in as the user: its events are the user's from now on.
    async with db_sessions() as session:
        session.add(
            event(ann, "product_search", at + 90 * M, "ae_lk_ann_late", received_at=utcnow())
        )
        assert await AnalyticsRepository(session).reassign([guest], user) == 2
        await session.commit()
    await rollups.refresh()
    assert await links_match_the_events(db_sessions, [ann, bob, user, guest]) == 10
    async with db_sessions() as session:
        found = await _rows(
            session,
            "SELECT id, person_id, prev_id FROM analytics_event_links "
            "WHERE id IN ('ae_lk_ann_4', 'ae_lk_guest_1', 'ae_lk_guest_2', 'ae_lk_user_2')",
        )
        assert not await _rows(
            session, "SELECT 1 FROM analytics_event_links WHERE person_id = :g", g=guest
        )
    assert found == {
        ("ae_lk_ann_4", ann, "ae_lk_ann_late"),
        ("ae_lk_guest_1", user, None),
        ("ae_lk_guest_2", user, "ae_lk_user_1"),
        ("ae_lk_user_2", user, "ae_lk_guest_2"),
    }


def _random_people(rng: random.Random) -> list[AnalyticsEvent]:
    """Members and guests whose events often share an instant, other events between the
    steps."""
    names = STEPS.split(",")
    rows: list[AnalyticsEvent] = []
    for person in range(120):
        key = f"anon:lk-g{person}" if person % 4 == 0 else f"lk-p{person}"
        at = T0 + 15 * M * rng.randrange(0, 2 * 96)
        step = 0
        for _ in range(rng.randrange(1, 12)):
            at += 15 * M * rng.choice([0, 0, 1, 2, 8, 40])
            step = (step + 1) % len(names) if rng.random() < 0.6 else rng.randrange(len(names))
            name = names[step] if rng.random() < 0.85 else "product_search"
            rows.append(event(key, name, at, f"ae_lk_{rng.randrange(10**9):09d}_{len(rows)}"))
    return rows


# strict, and step windows (whose step 2 skips its probe when the event just before is
# a step-1 event inside the window).
WALKED_QUERIES: tuple[dict[str, str], ...] = (
    {"window": "2d", "order": "strict"},
    {"window": "3d", "order": "strict", "step_windows": "1h,2h,30m"},
    {"window": "3d", "step_windows": "1h,2h,30m"},
    {"window": "2d", "step_windows": "2h,1d,1d"},
)
NOWS = (T0 + 1 * D + 7 * H, T0 + 6 * D)


async def all_agree(session: AsyncSession) -> list[int]:
    """Every walked query at every ``now``: the SQL equals the walk; the counts."""
    counts: list[int] = []
    for now in NOWS:
        for query in WALKED_QUERIES:
            found = await agreed(session, now, steps=STEPS, start=T0, end=T0 + 3 * D, **query)
            assert found.counts[0] > 50
            counts += found.counts
    return counts


async def test_funnels_from_links_equal_the_walk_linked_and_pending(
    db_sessions: SessionFactory,
) -> None:
    rng = random.Random(2026)
    async with db_sessions() as session:
        session.add_all(_random_people(rng))
        await session.commit()
    rollups = RollupService(db_sessions)
    await rollups.rebuild(HOURS)
    async with db_sessions() as session:
        watermark = await RollupRepository(session).watermark()
        assert watermark is not None
        pending = await LinkRepository(session).pending(watermark - OVERLAP)
        assert not [p for p in pending if p.startswith(("lk-", "anon:lk-"))]
        await all_agree(session)  # every link current

    # Late events between steps (received now: pending, probed), and guests signing in
    # as members who have events of their own.
    async with db_sessions() as session:
        for n in range(0, 120, 8):
            at = T0 + 15 * M * rng.randrange(0, 2 * 96)
            session.add(
                event(f"lk-p{n + 1}", "product_search", at, f"ae_lk_late_{n}", received_at=utcnow())
            )
        repository = AnalyticsRepository(session)
        for n in range(0, 120, 12):
            await repository.reassign([f"anon:lk-g{n}"], f"lk-p{n + 2}")
        await session.commit()
    async with db_sessions() as session:
        mixed = await all_agree(session)

    # The next rollup run relinks them; with the watermark past their receipt, nobody
    # is pending and every strict way is read from the links.
    await rollups.refresh()
    people = [f"lk-p{n}" for n in range(120)] + [f"anon:lk-g{n}" for n in range(120)]
    assert await links_match_the_events(db_sessions, people) > 500
    async with db_sessions() as session:
        # In this transaction only (never committed): the shared watermark an hour ahead
        # would leave other tests' people neither pending nor linked until a rollup ran.
        await RollupRepository(session).set_watermark(utcnow() + H)
        assert await all_agree(session) == mixed
        # The links are what it read: a link broken by hand (a cart's previous event
        # renamed) changes the strict answer, and the walk (raw events) disagrees.
        query = {"steps": STEPS, "start": T0, "end": T0 + 3 * D} | WALKED_QUERIES[0]
        before, _ = await figures(session, NOWS[1], **query)
        await session.exec(
            text(  # type: ignore[call-overload]
                "UPDATE analytics_event_links SET prev_event = 'tampered' WHERE id IN ("
                "SELECT id FROM analytics_event_links WHERE event = 'add_to_cart' "
                "AND prev_event = 'product_view' AND person_id LIKE 'lk-p%')"
            )
        )
        tampered, walked = await figures(session, NOWS[1], **query)
        assert tampered.counts[1] < before.counts[1] == walked.counts[1]
        # Step windows only skip a probe on such a link: without it, they probe.
        windows = {"steps": STEPS, "start": T0, "end": T0 + 3 * D} | WALKED_QUERIES[2]
        await agreed(session, NOWS[1], **windows)
