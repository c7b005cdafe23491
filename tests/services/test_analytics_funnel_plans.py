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

import pytest
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from services.analytics.links import LinkRepository
from services.analytics.rollup_repository import STATE, RollupRepository
from tests.services.test_analytics_funnel import (
    T0,
    TIE_PEOPLE,
    TIE_QUERIES,
    D,
    H,
    add,
    counts,
    event,
    funnel,
    one_instant_rows,
    sql_and_walk,
    tie_rows,
)

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
    await add(db_session, one_instant_rows())
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
    await add(db_session, tie_rows())
    await crowd(db_session)
    await read_links(db_session, how, TIE_PEOPLE)
    await force(db_session, plan)
    now = T0 + 6 * D
    for query in [*TIE_QUERIES, {"window": "2d", "order": "ordered", "breakdown": "source"}]:
        in_sql, walked = await sql_and_walk(db_session, query, now)
        assert walked == in_sql, query
