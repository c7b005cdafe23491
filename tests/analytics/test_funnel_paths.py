"""The funnel's SQL paths against the walk (``funnel_walk``, the reference) where they take
shortcuts: events of one instant (id order, in every mode), a late event between two
steps, a guest who signs in half-way, who is still inside a step window (read from the
recent first-step events only), and the probe that finds the event before a step's.

Every data set lives in March 2001 with a fixed ``now``, so the events other tests write
(at today's date) never fall in the range."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics import AnalyticsEvent
from services.analytics import AnalyticsRepository
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.funnel_repository import StepFigures
from services.analytics.funnel_statements import figures_params, figures_statement

T0 = datetime(2001, 3, 5, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
STEPS = "product_view,add_to_cart,checkout_start"


def event(person: str, name: str, at: datetime, event_id: str | None = None) -> AnalyticsEvent:
    row = AnalyticsEvent(event=name, person_id=person, created_at=at, properties={})
    if event_id is not None:
        row.id = event_id
    return row


async def add(session: AsyncSession, *rows: AnalyticsEvent) -> None:
    session.add_all(rows)
    await session.flush()


async def figures(
    session: AsyncSession, now: datetime, **query: Any
) -> tuple[StepFigures, StepFigures]:
    """The SQL's figures and the walk's, for everyone (no breakdown)."""
    params: dict[str, Any] = {"steps": STEPS, "window": "1d"} | query
    start, end = params.pop("start", T0), params.pop("end", T0 + 7 * D)
    parsed = FunnelQuery.parse(now=now, start=start, end=end, **params)
    service = FunnelService(session)
    in_sql = await service.repo.figures(parsed.rules, parsed.breakdown, parsed.range, now)
    walked = await service.walked(parsed, now)
    return in_sql[None], walked[None]


async def agreed(session: AsyncSession, now: datetime, **query: Any) -> StepFigures:
    in_sql, walked = await figures(session, now, **query)
    assert in_sql == walked, query
    return in_sql


async def test_every_mode_takes_events_of_one_instant_in_id_order(
    db_session: AsyncSession,
) -> None:
    """The rule for ties: events of one instant come in id order, and the entry before
    every event of its instant. A checkout at the cart's instant follows the cart only
    with a greater id, in ``ordered`` mode too (it took any event of the same instant)."""
    at = T0 + H
    await add(
        db_session,
        # ann: the checkout's id sorts before the cart's: it came first.
        event("ann", "product_view", at - H),
        event("ann", "add_to_cart", at, "ae_ann_2"),
        event("ann", "checkout_start", at, "ae_ann_1"),
        # bob: the other way round, a way to the end.
        event("bob", "product_view", at - H),
        event("bob", "add_to_cart", at, "ae_bob_1"),
        event("bob", "checkout_start", at, "ae_bob_2"),
        # cy: a cart at the entry's instant, its id before the view's: after the entry.
        event("cy", "product_view", at, "ae_cy_2"),
        event("cy", "add_to_cart", at, "ae_cy_1"),
    )
    now = T0 + 30 * D
    assert (await agreed(db_session, now)).counts == [3, 3, 1]
    # A step window as long as the funnel's changes nothing.
    assert (await agreed(db_session, now, step_windows="1d,1d")).counts == [3, 3, 1]
    # strict: ann's checkout came between her view and her cart, cy's cart before her
    # view: only bob's way is unbroken.
    assert (await agreed(db_session, now, order="strict")).counts == [3, 1, 1]


async def test_a_late_event_between_two_steps_breaks_a_strict_way(
    db_session: AsyncSession,
) -> None:
    """The funnel reads the events as they are now: an event that arrives late (its
    time hours back) between a view and a cart is the event before the cart."""
    await add(
        db_session,
        event("dan", "product_view", T0 + H),
        event("dan", "add_to_cart", T0 + 3 * H),
        event("dan", "checkout_start", T0 + 3 * H + M),
    )
    now = T0 + 30 * D
    assert (await agreed(db_session, now, order="strict")).counts == [1, 1, 1]
    await add(db_session, event("dan", "product_search", T0 + 2 * H))
    assert (await agreed(db_session, now, order="strict")).counts == [1, 0, 0]
    assert (await agreed(db_session, now, order="strict", step_windows="2h,1h")).counts == [
        1,
        0,
        0,
    ]
    assert (await agreed(db_session, now)).counts == [1, 1, 1]


async def test_a_guest_who_signs_in_walks_one_way(db_session: AsyncSession) -> None:
    """A guest views; the user (not yet linked) searched meanwhile on another device;
    the guest signs in and buys. Before the link the two are two people; after it, one
    way whose strict path the search breaks."""
    user, guest = "user_01FUNNELPATHS000000000001", "anon:guest-fp"
    await add(
        db_session,
        event(guest, "product_view", T0 + H),
        event(user, "product_search", T0 + H + 5 * M),
        event(user, "add_to_cart", T0 + H + 10 * M),
        event(user, "checkout_start", T0 + H + 20 * M),
    )
    now = T0 + 30 * D
    assert (await agreed(db_session, now)).counts == [1, 0, 0]  # the guest alone entered
    assert await AnalyticsRepository(db_session).reassign([guest], user) == 1
    assert (await agreed(db_session, now)).counts == [1, 1, 1]
    assert (await agreed(db_session, now, order="strict")).counts == [1, 0, 0]
    assert (await agreed(db_session, now, step_windows="15m,15m")).counts == [1, 1, 1]
    assert (await agreed(db_session, now, step_windows="5m,15m")).counts == [1, 0, 0]


async def test_in_window_with_a_step_window_reads_the_recent_first_steps(
    db_session: AsyncSession,
) -> None:
    """Who may still reach step 2 within a 3-hour step window: someone whose latest view
    inside the funnel's window is less than 3 hours old. Only views after now minus 3
    hours are read for it; an older entry stands for the older ones."""
    now = T0 + 3 * D
    await add(
        db_session,
        event("p1", "product_view", now - 10 * H),  # entered 10 hours ago: dropped
        event("p2", "product_view", now - 10 * H),
        event("p2", "product_view", now - H),  # looked again an hour ago: inside
        event("p3", "product_view", now - 2 * H),  # entered two hours ago: inside
        # p4's window (2 days) closes an hour from now; a view after that is outside it.
        event("p4", "product_view", now - 47 * H),
        event("p4", "product_view", now + 2 * H),
        event("p5", "product_view", now - 47 * H),  # and p5 looked 2 hours ago: inside
        event("p5", "product_view", now - 2 * H),
        event("p5", "product_view", now + 2 * H),
        event("p6", "product_view", now - 3 * H),  # exactly 3 hours ago: just dropped
    )
    span = {"start": T0, "end": now + H, "window": "2d"}
    for order in ("ordered", "strict"):
        found = await agreed(db_session, now, order=order, step_windows="3h,1h", **span)
        assert found.counts == [6, 0, 0], order
        assert found.in_window == [0, 3, 0], order
        # Without the step window, everyone's 2-day window is still open.
        assert (await agreed(db_session, now, order=order, **span)).in_window == [0, 6, 0]


async def test_the_sql_and_the_walk_agree_at_ties_late_and_early(
    db_session: AsyncSession,
) -> None:
    """Random people whose events often share an instant (in random id order), with
    other events between the steps and some after ``now``: every mode, at several
    ``now``s (so that people are inside their windows, or not), equals the walk."""
    rng = random.Random(1415)
    names = ["product_view", "add_to_cart", "checkout_start", "payment_start"]
    rows: list[AnalyticsEvent] = []
    for person in range(160):
        at = T0 + 15 * M * rng.randrange(0, 4 * 96)
        step = 0
        for _ in range(rng.randrange(1, 14)):
            at += 15 * M * rng.choice([0, 0, 1, 2, 8, 40])
            step = (step + 1) % len(names) if rng.random() < 0.6 else rng.randrange(len(names))
            name = names[step] if rng.random() < 0.85 else "product_search"
            rows.append(
                event(f"q{person}", name, at, f"ae_q_{rng.randrange(10**9):09d}_{len(rows)}")
            )
    await add(db_session, *rows)
    steps = ",".join(names)
    for now in (T0 + 2 * D, T0 + 4 * D + 7 * H, T0 + 9 * D):
        for query in (
            {"window": "2d"},
            {"window": "2d", "order": "any"},
            {"window": "3d", "step_windows": "1h,2h,30m"},
            {"window": "2d", "step_windows": "2h,1d,1d"},
            {"window": "2d", "order": "strict"},
            {"window": "3d", "order": "strict", "step_windows": "1h,2h,30m"},
        ):
            found = await agreed(db_session, now, steps=steps, start=T0, end=T0 + 5 * D, **query)
            assert found.counts[0] > 50
            assert found.counts[-1] > 0, query


async def _events_table_of_our_own(session: AsyncSession) -> None:
    """A temporary ``analytics_events`` (the same columns and indexes, by the same names)
    in front of the real one for the rest of the transaction: what the planner knows of
    it is this test's rows and its ANALYZE alone, not what other tests committed or
    when autovacuum last looked."""
    definitions = await session.exec(
        text(  # type: ignore[call-overload]
            "SELECT indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = 'analytics_events'"
        )
    )
    indexes = [d for (d,) in definitions.all()]
    await session.exec(
        text(  # type: ignore[call-overload]
            "CREATE TEMP TABLE analytics_events"
            " (LIKE public.analytics_events INCLUDING DEFAULTS) ON COMMIT DROP"
        )
    )
    for definition in indexes:
        here = definition.replace(" ON public.analytics_events ", " ON pg_temp.analytics_events ")
        assert here != definition, definition
        await session.exec(text(here))  # type: ignore[call-overload]
    found = await session.exec(
        text("SELECT to_regclass('analytics_events') = 'pg_temp.analytics_events'::regclass")  # type: ignore[call-overload]
    )
    assert found.one()[0] is True


async def test_strict_finds_the_event_before_a_step_by_one_probe(
    db_session: AsyncSession,
) -> None:
    """The strict statement never reads the events by time (every event of the range):
    it reads the steps' events by index, and the event just before each one of
    step 2 and later by one backward probe of the (person, time, id) index, ties in id
    order inside the index condition.

    Planned over a table of its own with statistics its ANALYZE made (the plan of the
    shared table flipped with what other tests had committed: with many people, the
    steps' events were read through the person index as well, and were taken for
    probes). The probes are told by their condition, not by their index."""
    await _events_table_of_our_own(db_session)
    rng = random.Random(2001)
    names = ["product_view", "add_to_cart", "checkout_start", "payment_start", "order_complete"]
    rows: list[AnalyticsEvent] = []
    for person in range(400):  # a month of visits: some ways through, events in between
        at = T0 + rng.randrange(30 * 24 * 60) * M
        for name in names[: rng.randrange(1, 6)]:
            rows.append(event(f"p{person}", name, at))
            at += rng.randrange(1, 90) * M
            if rng.random() < 0.3:
                rows.append(event(f"p{person}", rng.choice(names), at))
                at += M
    await add(db_session, *rows)
    await db_session.exec(text("ANALYZE analytics_events"))  # type: ignore[call-overload]
    now = T0 + 30 * D
    counts = (await agreed(db_session, now, steps=STEPS, order="strict")).counts
    assert counts[0] > 50  # the statement answers as the walk does
    assert counts[-1] > 0
    parsed = FunnelQuery.parse(now=now, start=T0, end=T0 + 7 * D, steps=STEPS, order="strict")
    statement = figures_statement(parsed.rules, None)
    # The planner would read a table this small whole; the index paths are what counts.
    await db_session.exec(text("SET LOCAL enable_seqscan = off"))  # type: ignore[call-overload]
    await db_session.exec(text("SET LOCAL enable_bitmapscan = off"))  # type: ignore[call-overload]
    plan = await db_session.exec(
        text(f"EXPLAIN (FORMAT JSON) {statement}"),  # type: ignore[call-overload]
        params=figures_params(parsed.rules, parsed.range, now),
    )
    scans: list[dict[str, Any]] = []

    def collect(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "analytics_events":
            scans.append(node)
        for child in node.get("Plans", []):
            collect(child)

    collect(plan.one()[0][0]["Plan"])
    # Every read is by an index, none by the time index.
    assert all("Index Name" in node for node in scans), scans
    assert "analytics_events_created_at_idx" not in {node["Index Name"] for node in scans}
    probes = [n for n in scans if "ROW(created_at, id) < ROW(" in n.get("Index Cond", "")]
    assert len(probes) == 2  # one per step after the first
    for probe in probes:
        assert probe["Index Name"] == "analytics_events_person_id_created_at_idx"
        assert probe["Scan Direction"] == "Backward"


async def test_step_windows_count_each_persons_gap_from_the_earliest_way_inside(
    db_session: AsyncSession,
) -> None:
    """Step windows, person by person: each person is a breakdown group of their own
    (their ``utm_source``), so every median is one person's gap. People repeat steps
    (ways reached at several times, some just outside a step's window, some at one
    instant): the gap from the earliest way inside the window equals the walk's."""
    rng = random.Random(1416)
    names = ["product_view", "add_to_cart", "checkout_start", "payment_start"]
    rows: list[AnalyticsEvent] = []
    for person in range(120):
        at = T0 + 10 * M * rng.randrange(0, 3 * 144)
        step = 0
        for _ in range(rng.randrange(2, 16)):
            at += 10 * M * rng.choice([0, 1, 2, 3, 6, 12, 30])
            # Often the same step again, else mostly on to the next one.
            roll = rng.random()
            step = step if roll < 0.35 else (step + 1) % len(names) if roll < 0.8 else 0
            rows.append(
                AnalyticsEvent(
                    id=f"ae_w_{rng.randrange(10**9):09d}_{len(rows)}",
                    event=names[step],
                    person_id=f"w{person}",
                    created_at=at,
                    properties={"utm_source": f"w{person}"},
                )
            )
    await add(db_session, *rows)
    service = FunnelService(db_session)
    steps = ",".join(names)
    for now, windows in ((T0 + 9 * D, "1h,1h,30m"), (T0 + 2 * D, "30m,2h,1h")):
        parsed = FunnelQuery.parse(
            now=now,
            start=T0,
            end=T0 + 5 * D,
            steps=steps,
            window="2d",
            step_windows=windows,
            breakdown="source",
        )
        in_sql = await service.repo.figures(parsed.rules, parsed.breakdown, parsed.range, now)
        walked = await service.walked(parsed, now)
        assert in_sql == walked, windows
        reached_last = [g for g, f in in_sql.items() if g is not None and f.counts[-1]]
        assert len(reached_last) > 5, windows


async def test_step_windows_carry_on_from_the_first_cart_that_reached_the_step(
    db_session: AsyncSession,
) -> None:
    """Step 3 is read from the people of step 2, with what they carry: ola's first cart
    is outside the hour after her view, a later one inside. Her checkout window opens at
    the latest cart that reached the step (not her first cart, not her first that
    reached it, not her latest cart), and her gap is counted from the view it followed."""
    await add(
        db_session,
        event("ola", "product_view", T0),
        event("ola", "add_to_cart", T0 + 2 * H),  # two hours after the view: outside
        event("ola", "checkout_start", T0 + 2 * H + 30 * M),  # before step 2 was reached
        event("ola", "product_view", T0 + 3 * H),
        event("ola", "add_to_cart", T0 + 3 * H + 30 * M),  # reaches step 2
        event("ola", "add_to_cart", T0 + 4 * H),  # reaches it again: the window opens here
        event("ola", "add_to_cart", T0 + 5 * H),  # two hours after a view: outside
    )
    windows = {"step_windows": "1h,1h"}
    # 4h45: inside the hour after the 4h cart (the first that reached step 2, at 3h30,
    # would have closed it at 4h30).
    found = await agreed(db_session, T0 + 4 * H + 45 * M, **windows)
    assert (found.counts, found.in_window) == ([1, 1, 0], [0, 0, 1])
    assert found.medians == [None, 30 * 60, None]
    # 5h15: dropped (the 5h cart, which did not reach the step, would keep it open).
    found = await agreed(db_session, T0 + 5 * H + 15 * M, **windows)
    assert (found.counts, found.in_window) == ([1, 1, 0], [0, 0, 0])
    # strict: the 4h cart follows a cart, not a view; the window opens at 3h30.
    strict = windows | {"order": "strict"}
    found = await agreed(db_session, T0 + 4 * H + 15 * M, **strict)
    assert (found.counts, found.in_window) == ([1, 1, 0], [0, 0, 1])
    assert found.medians == [None, 30 * 60, None]
    found = await agreed(db_session, T0 + 4 * H + 45 * M, **strict)
    assert (found.counts, found.in_window) == ([1, 1, 0], [0, 0, 0])
