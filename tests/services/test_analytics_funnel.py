"""The funnel on hand-built events: order modes, windows, step windows, people still in
the window, a guest who signs in, breakdowns, and the SQL and walked paths agreeing.

Every data set lives in March 2001 with a fixed ``now``, so the events other tests write
(at today's date) never fall in the range.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics import AnalyticsEvent
from models.analytics_funnel import FunnelReport
from models.catalog import Category, Product
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.funnel_repository import StepFigures
from tests.factories import unique_slug

T0 = datetime(2001, 3, 5, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)
D = timedelta(days=1)
STEPS = "product_view,add_to_cart,checkout_start"
START, END = T0, T0 + 7 * D


def event(person: str, name: str, at: datetime, **fields: Any) -> AnalyticsEvent:
    properties = fields.pop("properties", {})
    return AnalyticsEvent(
        event=name, person_id=person, created_at=at, properties=properties, **fields
    )


async def add(session: AsyncSession, rows: Sequence[AnalyticsEvent]) -> None:
    session.add_all(rows)
    await session.flush()


async def funnel(
    session: AsyncSession, *, now: datetime = T0 + 30 * D, **query: str
) -> FunnelReport:
    params: dict[str, Any] = {"steps": STEPS, "window": "1d"} | query
    parsed = FunnelQuery.parse(now=now, start=START, end=END, **params)
    return await FunnelService(session).funnel(parsed, now)


def counts(report: FunnelReport) -> list[int]:
    return [step.count for step in report.steps]


@pytest.fixture
async def shoppers(db_session: AsyncSession) -> AsyncSession:
    """Five people entered (a view in the range); one never did."""
    t = T0 + 2 * H
    await add(
        db_session,
        [
            # alice: view, cart, checkout, each an hour apart.
            event("alice", "product_view", t),
            event("alice", "add_to_cart", t + H),
            event("alice", "checkout_start", t + 2 * H),
            # bob: a cart before entry (not counted), then checkout before cart.
            event("bob", "add_to_cart", t - H),
            event("bob", "product_view", t),
            event("bob", "checkout_start", t + H),
            event("bob", "add_to_cart", t + 2 * H),
            # carol: a search between view and cart.
            event("carol", "product_view", t),
            event("carol", "product_search", t + 10 * timedelta(minutes=1)),
            event("carol", "add_to_cart", t + 20 * timedelta(minutes=1)),
            event("carol", "checkout_start", t + 30 * timedelta(minutes=1)),
            # dave: his cart comes two days later, outside the 1-day window.
            event("dave", "product_view", t),
            event("dave", "add_to_cart", t + 2 * D),
            # erin never views: she never enters.
            event("erin", "add_to_cart", t),
            event("erin", "checkout_start", t + H),
            # frank viewed before the range; he enters at his first view inside it.
            event("frank", "product_view", T0 - H),
            event("frank", "product_view", T0 + D),
            event("frank", "add_to_cart", T0 + D + 10 * timedelta(minutes=1)),
        ],
    )
    return db_session


async def test_ordered_counts_steps_in_order_within_the_window(shoppers: AsyncSession) -> None:
    report = await funnel(shoppers)
    assert counts(report) == [5, 4, 2]  # bob's checkout came before his cart
    view, cart, checkout = report.steps
    assert (view.conversion_from_previous, view.conversion_from_start) == (1.0, 1.0)
    assert (cart.conversion_from_previous, cart.dropped, cart.in_window) == (0.8, 1, 0)
    assert (checkout.conversion_from_previous, checkout.conversion_from_start) == (0.5, 0.4)
    # cart after view: alice 1 h, bob 2 h, carol 20 min, frank 10 min.
    assert cart.median_seconds_from_previous == (1200 + 3600) / 2
    assert checkout.median_seconds_from_previous == (3600 + 600) / 2  # alice, carol
    assert view.median_seconds_from_previous is None


async def test_any_order_takes_the_later_steps_in_any_order(shoppers: AsyncSession) -> None:
    report = await funnel(shoppers, order="any")
    assert counts(report) == [5, 4, 3]  # bob now counts
    # bob: checkout after 1 h, cart after 2 h: step 3 is reached at the later of the two.
    assert report.steps[2].median_seconds_from_previous == 600  # alice 3600, bob 0, carol 600


async def test_strict_allows_no_other_event_between_steps(shoppers: AsyncSession) -> None:
    report = await funnel(shoppers, order="strict")
    # carol's search breaks her way; bob's checkout sits between view and cart.
    assert counts(report) == [5, 2, 1]  # alice to the end, frank to his cart


async def test_a_longer_window_lets_dave_convert(shoppers: AsyncSession) -> None:
    assert counts(await funnel(shoppers, window="3d")) == [5, 5, 2]
    # carol's cart after 20 minutes, her checkout after exactly 30; frank's cart after 10.
    assert counts(await funnel(shoppers, window="30m")) == [5, 2, 1]
    assert counts(await funnel(shoppers, window="25m")) == [5, 2, 0]


async def test_in_window_is_reported_apart_from_dropped(db_session: AsyncSession) -> None:
    now = T0 + 7 * D
    await add(
        db_session,
        [
            event("dave", "product_view", T0),  # his window closed long ago: dropped
            event("grace", "product_view", now - 2 * H),  # still has 22 hours
            event("henry", "product_view", now - 4 * H),
            event("henry", "add_to_cart", now - 3 * H),  # may still check out
            event("ivy", "product_view", T0 + D),
            event("ivy", "add_to_cart", T0 + D + H),  # checkout window closed: dropped
        ],
    )
    view, cart, checkout = (await funnel(db_session, now=now)).steps
    assert (view.count, view.dropped, view.in_window) == (4, 0, 0)
    assert (cart.count, cart.in_window, cart.dropped) == (2, 1, 1)  # grace waits, dave left
    assert (checkout.count, checkout.in_window, checkout.dropped) == (0, 1, 1)  # henry, ivy
    # Once the windows have passed, everyone left is dropped.
    later = await funnel(db_session, now=now + 2 * D)
    assert [(s.in_window, s.dropped) for s in later.steps] == [(0, 0), (0, 2), (0, 2)]


async def test_step_windows_count_from_the_latest_way_to_the_previous_step(
    db_session: AsyncSession,
) -> None:
    await add(
        db_session,
        [
            # ivan looks on Monday, comes back on Wednesday and buys within minutes.
            event("ivan", "product_view", T0),
            event("ivan", "product_view", T0 + 2 * D),
            event("ivan", "add_to_cart", T0 + 2 * D + 10 * timedelta(minutes=1)),
            event("ivan", "checkout_start", T0 + 2 * D + 20 * timedelta(minutes=1)),
            # judy takes two hours from view to cart.
            event("judy", "product_view", T0),
            event("judy", "add_to_cart", T0 + 2 * H),
        ],
    )
    report = await funnel(db_session, window="7d", step_windows="1h,1h")
    assert counts(report) == [2, 1, 1]
    assert report.step_windows == ["1h", "1h"]
    assert report.steps[1].median_seconds_from_previous == 600  # from Wednesday's view
    assert counts(await funnel(db_session, window="7d")) == [2, 2, 1]
    assert counts(await funnel(db_session, window="7d", step_windows="3h,1h")) == [2, 2, 1]


async def test_a_guest_who_signs_in_counts_once(db_session: AsyncSession) -> None:
    """As ingestion leaves them after sign-in: the guest's events carry the anonymous id
    and the user's person id (the identity link rewrote it), the later ones the user."""
    user = "user_01GUESTSIGNSIN0000000000"
    guest = {"anonymous_id": "anon-7f3a", "session_id": "cart_01GUEST"}
    await add(
        db_session,
        [
            event(user, "product_view", T0 + H, **guest),
            event(user, "add_to_cart", T0 + 2 * H, **guest),
            event(user, "checkout_start", T0 + 3 * H, user_id=user),
            event(user, "payment_start", T0 + 3 * H + timedelta(minutes=1), user_id=user),
            event(user, "order_complete", T0 + 3 * H + timedelta(minutes=2), user_id=user),
        ],
    )
    parsed = FunnelQuery.parse(now=T0 + 30 * D, start=START, end=END)  # the seed's five steps
    report = await FunnelService(db_session).funnel(parsed, T0 + 30 * D)
    assert report.steps[0].step == "product_view"
    assert counts(report) == [1, 1, 1, 1, 1]
    assert report.steps[-1].conversion_from_start == 1.0


async def test_breakdown_by_source_and_by_category(db_session: AsyncSession) -> None:
    shoes = Category(name="Shoes", slug=unique_slug("shoes"))
    hats = Category(name="Hats", slug=unique_slug("hats"))
    db_session.add_all([shoes, hats])
    await db_session.flush()
    hat = Product(
        sku=unique_slug("sku"),
        name="Hat",
        slug=unique_slug("hat"),
        price=100,
        currency="USD",
        category_id=hats.id,
    )
    db_session.add(hat)
    await db_session.flush()
    await add(
        db_session,
        [
            event(
                "p1",
                "product_view",
                T0,
                properties={"utm_source": "Newsletter", "categoryId": shoes.id},
            ),
            event("p1", "add_to_cart", T0 + H),
            event(
                "p2",
                "product_view",
                T0,
                referrer="https://www.google.com/search?q=x",
                properties={"productId": hat.id},
            ),
            event("p3", "product_view", T0, properties={"categoryId": shoes.id}),
            event("p3", "add_to_cart", T0 + H),
            event("p3", "checkout_start", T0 + 2 * H),
        ],
    )
    by_source = await funnel(db_session, breakdown="source")
    assert by_source.breakdown is not None
    assert by_source.breakdown.by == "source"
    groups = {g.value: [s.count for s in g.steps] for g in by_source.breakdown.groups}
    assert groups == {"newsletter": [1, 1, 0], "www.google.com": [1, 0, 0], "direct": [1, 1, 1]}
    assert counts(by_source) == [3, 2, 1]
    by_category = await funnel(db_session, breakdown="category")
    assert by_category.breakdown is not None
    groups = {g.value: [s.count for s in g.steps] for g in by_category.breakdown.groups}
    assert groups == {shoes.slug: [2, 2, 1], hats.slug: [1, 0, 0]}
    assert by_category.breakdown.groups[0].value == shoes.slug  # biggest first


async def test_a_breakdown_takes_the_entry_event(db_session: AsyncSession) -> None:
    """The group is the person's first step-1 event inside the range: not a view before
    it, not a later one; of two at the same instant, the one with the smaller id."""
    await add(
        db_session,
        [
            event("p1", "product_view", T0 - H, properties={"utm_source": "before"}),
            event("p1", "product_view", T0 + H, properties={"utm_source": "entry"}),
            event("p1", "product_view", T0 + 2 * H, properties={"utm_source": "later"}),
            event("p1", "add_to_cart", T0 + 3 * H),
            event("p2", "product_view", T0, id="ae_tie_b", properties={"utm_source": "second"}),
            event("p2", "product_view", T0, id="ae_tie_a", properties={"utm_source": "first"}),
        ],
    )
    report = await funnel(db_session, breakdown="source")
    assert report.breakdown is not None
    groups = {g.value: [s.count for s in g.steps] for g in report.breakdown.groups}
    assert groups == {"entry": [1, 1, 0], "first": [1, 0, 0]}


async def test_the_database_and_the_walk_agree(db_session: AsyncSession) -> None:
    """Random people over five steps: the SQL figures equal the person-by-person walk."""
    rng = random.Random(14)
    names = ["product_view", "add_to_cart", "checkout_start", "payment_start", "order_complete"]
    rows = []
    for person in range(150):
        at = T0 + timedelta(minutes=rng.randrange(0, 9 * 24 * 60))
        step = 0
        for _ in range(rng.randrange(1, 12)):
            at += timedelta(minutes=rng.randrange(1, 10 * 60))
            # Mostly on to the next step, sometimes anywhere (repeats, skips, going back).
            step = (step + 1) % len(names) if rng.random() < 0.6 else rng.randrange(len(names))
            source = rng.choice(["a", "b", "c"])
            rows.append(event(f"r{person}", names[step], at, properties={"utm_source": source}))
    await add(db_session, rows)
    service = FunnelService(db_session)
    now = T0 + 8 * D
    for query in (
        {"window": "2d"},
        {"window": "2d", "order": "any"},
        {"window": "3d", "order": "any", "step_windows": "5h,1d,10h,1d"},
        {"window": "1d", "breakdown": "source"},
        {"window": "3d", "step_windows": "5h,1d,10h,1d"},
        {"window": "2d", "order": "strict"},
        {"window": "3d", "order": "strict", "step_windows": "5h,1d,10h,1d"},
    ):
        parsed = FunnelQuery.parse(now=now, start=START, end=END, steps=",".join(names), **query)
        in_sql = await service.repo.figures(parsed.rules, parsed.breakdown, parsed.range, now)
        walked = await service.walked(parsed, now)
        assert walked == in_sql, query
        assert in_sql[None].counts[0] > 50
        assert in_sql[None].counts[-1] > 0


TIE_STEPS = ["product_view", "add_to_cart", "checkout_start", "payment_start"]
# The walked modes (strict, step windows), with and without a breakdown.
TIE_QUERIES: list[dict[str, str]] = [
    {"window": "3d", "step_windows": "1h,2h,30m"},
    {"window": "2d", "step_windows": "30m,1d,1d", "breakdown": "source"},
    {"window": "2d", "order": "strict"},
    {"window": "2d", "order": "strict", "breakdown": "source"},
    {"window": "3d", "order": "strict", "step_windows": "1h,2h,30m"},
    {"window": "2d", "order": "strict", "step_windows": "1h,1h,1d", "breakdown": "source"},
]
TIE_PEOPLE = [f"t{person}" for person in range(200)]


def tie_rows() -> list[AnalyticsEvent]:
    """Many events of a person at the same instant (taken in id order, random here) and
    other events between the steps (``TIE_STEPS``), of ``TIE_PEOPLE``."""
    rng = random.Random(1414)
    names = TIE_STEPS
    rows: list[AnalyticsEvent] = []
    for person in TIE_PEOPLE:
        at = T0 + timedelta(minutes=30 * rng.randrange(0, 9 * 48))
        step = 0
        for _ in range(rng.randrange(1, 14)):
            # Half the time the same instant as the event before.
            at += timedelta(minutes=30 * rng.choice([0, 0, 1, 2, 6, 20]))
            step = (step + 1) % len(names) if rng.random() < 0.6 else rng.randrange(len(names))
            name = names[step] if rng.random() < 0.85 else "product_search"
            rows.append(
                event(
                    person,
                    name,
                    at,
                    id=f"ae_tie_{rng.randrange(10**9):09d}_{len(rows)}",
                    properties={"utm_source": rng.choice(["a", "b"])},
                )
            )
    return rows


async def sql_and_walk(
    session: AsyncSession, query: dict[str, str], now: datetime
) -> tuple[dict[str | None, StepFigures], dict[str | None, StepFigures]]:
    """The funnel of ``TIE_STEPS`` in SQL and walked in Python."""
    service = FunnelService(session)
    parsed = FunnelQuery.parse(now=now, start=START, end=END, steps=",".join(TIE_STEPS), **query)
    in_sql = await service.repo.figures(parsed.rules, parsed.breakdown, parsed.range, now)
    return in_sql, await service.walked(parsed, now)


async def test_strict_and_step_windows_agree_with_the_walk_at_ties(
    db_session: AsyncSession,
) -> None:
    """Many events of a person at the same instant and other events between the steps:
    the SQL walk of ``strict`` and of step windows, with a breakdown, equals the walk in
    Python."""
    await add(db_session, tie_rows())
    now = T0 + 6 * D  # many still inside their windows
    for query in TIE_QUERIES:
        in_sql, walked = await sql_and_walk(db_session, query, now)
        assert walked == in_sql, query
        assert in_sql[None].counts[0] > 50
        assert in_sql[None].counts[-1] > 0, query
        assert sum(in_sql[None].in_window) > 0, query


def one_instant_rows() -> list[AnalyticsEvent]:
    """kim's view and cart at one instant in id order, leo's the other way round."""
    return [
        event("kim", "product_view", T0 + H, id="ae_kim_1"),
        event("kim", "add_to_cart", T0 + H, id="ae_kim_2"),
        event("leo", "product_view", T0 + H, id="ae_leo_2"),
        event("leo", "add_to_cart", T0 + H, id="ae_leo_1"),
    ]


async def test_strict_at_one_instant_follows_the_ids(db_session: AsyncSession) -> None:
    """A view and a cart at the same instant: in id order they are a way, the other way
    round the cart came first and the way is broken; ordered with step windows too."""
    await add(db_session, one_instant_rows())
    steps = "product_view,add_to_cart"
    assert counts(await funnel(db_session, order="strict", steps=steps)) == [2, 1]
    assert counts(await funnel(db_session, order="strict", step_windows="1m", steps=steps)) == [
        2,
        1,
    ]
    # leo's cart, before his view in id order, is at his entry: the entry starts a way.
    assert counts(await funnel(db_session, step_windows="1m", steps=steps)) == [2, 2]


async def test_strict_with_step_windows(db_session: AsyncSession) -> None:
    """Each step within its own window of the step before, no other event between."""
    await add(
        db_session,
        [
            event("max", "product_view", T0),
            event("max", "add_to_cart", T0 + 30 * timedelta(minutes=1)),
            event("max", "checkout_start", T0 + 2 * H + 30 * timedelta(minutes=1)),
            event("nia", "product_view", T0),
            event("nia", "add_to_cart", T0 + 2 * H),
            # A second way: a view again, its cart within the hour, then checkout.
            event("nia", "product_view", T0 + 5 * H),
            event("nia", "add_to_cart", T0 + 5 * H + 40 * timedelta(minutes=1)),
            event("nia", "checkout_start", T0 + 6 * H),
        ],
    )
    assert counts(await funnel(db_session, order="strict")) == [2, 2, 2]
    report = await funnel(db_session, order="strict", step_windows="1h,1h")
    assert counts(report) == [2, 2, 1]  # max's checkout came 2 h after his cart
    cart, checkout = report.steps[1:]
    assert cart.median_seconds_from_previous == (30 * 60 + 40 * 60) / 2
    assert checkout.median_seconds_from_previous == 20 * 60  # nia's second way
    assert counts(await funnel(db_session, order="strict", step_windows="1h,3h")) == [2, 2, 2]
    # Still inside the window: max's checkout window (1 h from his cart) is open at 1 h.
    later = await funnel(db_session, now=T0 + H, order="strict", step_windows="1h,1h")
    assert [s.in_window for s in later.steps] == [0, 0, 1]


async def test_funnels_and_retention_read_covering_indexes(db_session: AsyncSession) -> None:
    """Each step's scan by (event, time) and each person's by (person, time) find the
    other column they need in the index itself (index-only scans at 10 million: README)."""
    rows = await db_session.exec(
        text(  # type: ignore[call-overload]
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'analytics_events'"
        )
    )
    defs = dict(rows.all())
    # With the id, which orders events of the same instant, and the source a funnel by
    # source takes from the entry event; the category's ids in an index of their own.
    assert defs["analytics_events_event_created_at_idx"].endswith(
        "(event, created_at) INCLUDE (person_id, id, source)"
    )
    assert defs["analytics_events_event_category_idx"].endswith(
        "(event, created_at) INCLUDE (person_id, id, category_id, product_id)"
    )
    # Keyed in (time, id) order: the probe for the event just before a step's event.
    assert defs["analytics_events_person_id_created_at_idx"].endswith(
        "(person_id, created_at, id) INCLUDE (event)"
    )
    # The walk of strict funnels and step windows: by time, with whose, which and the id.
    assert defs["analytics_events_created_at_idx"].endswith(
        "(created_at) INCLUDE (person_id, event, id)"
    )
    # Vacuumed every 100,000 new events, so that recent pages are all-visible.
    options = await db_session.exec(
        text(  # type: ignore[call-overload]
            "SELECT reloptions FROM pg_class WHERE relname = 'analytics_events'"
        )
    )
    assert "autovacuum_vacuum_insert_threshold=100000" in options.one()[0]


async def test_the_funnel_leaves_the_planner_as_it_found_it(shoppers: AsyncSession) -> None:
    """The funnel's statement runs without nested loops; the rest of the transaction
    (a request's other reads) is planned as usual."""
    assert counts(await funnel(shoppers)) == [5, 4, 2]
    setting = await shoppers.exec(text("SHOW enable_nestloop"))  # type: ignore[call-overload]
    assert setting.one()[0] == "on"
