"""The funnel at tied timestamps whatever plan PostgreSQL chooses: events of one instant
are taken in id order (README *Analytics*: funnels), so no index, sort, hash or parallel
plan may decide which of them came first.

Each case forces one plan family for the test's transaction and runs the tie cases of
``test_analytics_funnel`` under it, with unrelated events at the same instants, and with
each way the walked modes read an event's previous one: probed, from the links, or
probed for the people received since the rollup's watermark (``pending``, as in a shared
database where another test's rollup run has left one). A person's first event has no
previous one: when it shares the entry's instant with a smaller id it still starts a
way with step windows, whichever way it was read.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics import AnalyticsEvent
from models.base import utcnow
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.links import LinkRepository
from services.analytics.rollup_repository import STATE, RollupRepository
from tests.services.test_analytics_funnel import END, START, T0, D, H, add, counts, event, funnel

PLANS: dict[str, dict[str, str]] = {
    "no_index_scan": {"enable_indexscan": "off", "enable_indexonlyscan": "off"},
    "no_bitmap_scan": {"enable_bitmapscan": "off"},
    "no_sort": {"enable_sort": "off"},
    "no_hashagg": {"enable_hashagg": "off"},
    "no_seqscan": {"enable_seqscan": "off"},
    "parallel": {
        "max_parallel_workers_per_gather": "2",
        "parallel_setup_cost": "0",
        "parallel_tuple_cost": "0",
        "min_parallel_table_scan_size": "0",
        "min_parallel_index_scan_size": "0",
    },
}


async def force(session: AsyncSession, plan: dict[str, str]) -> None:
    """``plan`` for the rest of the test's transaction (``SET LOCAL``)."""
    for name, value in plan.items():
        await session.exec(
            text("SELECT set_config(:name, :value, true)"),  # type: ignore[call-overload]
            params={"name": name, "value": value},
        )


async def crowd(session: AsyncSession) -> None:
    """Unrelated people's events at the tie cases' instants, statistics taken: the
    tables look as the shared database's do to the planner. None is a view, the first
    step, so none of these people enters."""
    rng = random.Random(7)
    names = ["add_to_cart", "checkout_start", "payment_start", "product_search"]
    await add(
        session,
        [
            event(f"crowd{n % 400}", rng.choice(names), T0 + H * rng.randrange(0, 7 * 24))
            for n in range(4000)
        ],
    )
    await session.exec(text("ANALYZE analytics_events"))  # type: ignore[call-overload]


LINKS = ("probed", "pending", "relinked")


async def read_links(session: AsyncSession, how: str, people: list[str]) -> None:
    """How the walked modes read each event's previous one: ``probed`` (no rollup run
    yet), ``pending`` (every person received since the watermark), or ``relinked``
    (the stored links of ``people``, current). In the test's transaction only."""
    if how == "probed":
        await session.exec(
            text("DELETE FROM analytics_rollup_state WHERE name = :name"),  # type: ignore[call-overload]
            params={"name": STATE},
        )
        return
    if how == "relinked":
        await LinkRepository(session).relink(people)
    shift = H if how == "relinked" else -H
    await RollupRepository(session).set_watermark(utcnow() + shift)


@pytest.mark.parametrize("how", LINKS)
@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
async def test_one_instant_follows_the_ids_under_any_plan(
    db_session: AsyncSession, plan: dict[str, str], how: str
) -> None:
    """A view and a cart at one instant: in id order a way, the other way round broken
    (strict), and the entry starts a way (ordered with step windows)."""
    await add(
        db_session,
        [
            event("kim", "product_view", T0 + H, id="ae_kim_1"),
            event("kim", "add_to_cart", T0 + H, id="ae_kim_2"),
            event("leo", "product_view", T0 + H, id="ae_leo_2"),
            event("leo", "add_to_cart", T0 + H, id="ae_leo_1"),
        ],
    )
    await crowd(db_session)
    await read_links(db_session, how, ["kim", "leo"])
    await force(db_session, plan)
    steps = "product_view,add_to_cart"
    assert counts(await funnel(db_session, order="strict", steps=steps)) == [2, 1]
    report = await funnel(db_session, order="strict", step_windows="1m", steps=steps)
    assert counts(report) == [2, 1]
    assert counts(await funnel(db_session, step_windows="1m", steps=steps)) == [2, 2]


@pytest.mark.parametrize("how", LINKS)
@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
async def test_sql_agrees_with_the_walk_at_ties_under_any_plan(
    db_session: AsyncSession, plan: dict[str, str], how: str
) -> None:
    """Many events of a person at one instant, ids in random order: the SQL funnel in
    every walked mode, with a breakdown, equals the walk in Python."""
    rng = random.Random(1414)
    names = ["product_view", "add_to_cart", "checkout_start", "payment_start"]
    rows: list[AnalyticsEvent] = []
    for person in range(200):
        at = T0 + timedelta(minutes=30 * rng.randrange(0, 9 * 48))
        step = 0
        for _ in range(rng.randrange(1, 14)):
            at += timedelta(minutes=30 * rng.choice([0, 0, 1, 2, 6, 20]))
            step = (step + 1) % len(names) if rng.random() < 0.6 else rng.randrange(len(names))
            name = names[step] if rng.random() < 0.85 else "product_search"
            rows.append(
                event(
                    f"t{person}",
                    name,
                    at,
                    id=f"ae_tie_{rng.randrange(10**9):09d}_{len(rows)}",
                    properties={"utm_source": rng.choice(["a", "b"])},
                )
            )
    await add(db_session, rows)
    await crowd(db_session)
    await read_links(db_session, how, [f"t{person}" for person in range(200)])
    await force(db_session, plan)
    service = FunnelService(db_session)
    now = T0 + 6 * D
    for query in (
        {"window": "3d", "step_windows": "1h,2h,30m"},
        {"window": "2d", "step_windows": "30m,1d,1d", "breakdown": "source"},
        {"window": "2d", "order": "strict"},
        {"window": "2d", "order": "strict", "breakdown": "source"},
        {"window": "3d", "order": "strict", "step_windows": "1h,2h,30m"},
        {"window": "2d", "order": "strict", "step_windows": "1h,1h,1d", "breakdown": "source"},
        {"window": "2d", "order": "ordered", "breakdown": "source"},
    ):
        parsed = FunnelQuery.parse(now=now, start=START, end=END, steps=",".join(names), **query)
        in_sql = await service.repo.figures(parsed.rules, parsed.breakdown, parsed.range, now)
        walked = await service.walked(parsed, now)
        assert walked == in_sql, query
