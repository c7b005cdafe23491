"""A funnel computed in shares of the people side by side (``Settings.analytics_parallelism``)
gives the figures of the one statement: counts and people still inside the window summed,
the medians of everyone's gaps together, breakdowns included, in every mode.

The shares run on connections of their own, so the data set is committed: in 2003, with
event names and people of this test's own, so nothing else the suite writes counts."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from models.analytics import AnalyticsEvent
from services.analytics import funnel_repository
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.funnel_repository import FunnelRepository, StepFigures

T0 = datetime(2003, 4, 7, tzinfo=UTC)
NOW = T0 + timedelta(days=9)
MODES: list[dict[str, str]] = [
    {"order": "ordered"},
    {"order": "strict"},
    {"order": "any"},
    {"order": "ordered", "step_windows": "6h,6h,6h"},
    {"order": "strict", "step_windows": "6h,6h,6h"},
]


async def committed_people(engine: AsyncEngine, tag: str) -> list[str]:
    """80 people walking four steps of this test's own names (and other events between),
    from three sources, some still inside their windows at ``NOW``."""
    rng = random.Random(2003)
    names = [f"t{tag}_{step}" for step in ("seen", "carted", "paid", "done")]
    rows: list[AnalyticsEvent] = []
    for n in range(80):
        person = f"anon:{tag}-{n}"
        at = T0 + timedelta(minutes=rng.randrange(8 * 24 * 60))
        source = rng.choice(["newsletter", "ads", ""])
        step = 0
        for _ in range(rng.randrange(1, 9)):
            name = names[step] if rng.random() < 0.8 else f"t{tag}_other"
            properties = {"utm_source": source} if source else {}
            rows.append(
                AnalyticsEvent(event=name, person_id=person, created_at=at, properties=properties)
            )
            step = min(step + 1, 3) if rng.random() < 0.6 else rng.randrange(4)
            at += timedelta(minutes=rng.choice([0, 5, 90, 400, 900]))
    async with create_session_factory(engine)() as session:
        session.add_all(rows)
        await session.commit()
    return names


async def figures(
    engine: AsyncEngine, names: list[str], parallelism: int, **query: str
) -> dict[str | None, StepFigures]:
    parsed = FunnelQuery.parse(
        now=NOW, start=T0, end=T0 + timedelta(days=7), steps=",".join(names), window="2d", **query
    )
    async with create_session_factory(engine)() as session:
        service = FunnelService(session, parallelism)
        return await service.repo.figures(parsed.rules, parsed.breakdown, parsed.range, NOW)


@pytest.fixture
def own_connections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the shares run on connections of their own."""
    calls: list[int] = []
    on_own_connection: Callable[..., Awaitable[list[Any]]] = FunnelRepository._on_own_connection

    async def counted(engine: AsyncEngine, statement: str, params: dict[str, Any]) -> list[Any]:
        calls.append(params["part"])
        return await on_own_connection(engine, statement, params)

    monkeypatch.setattr(FunnelRepository, "_on_own_connection", staticmethod(counted))
    return calls


@pytest.mark.parametrize("breakdown", [None, "source"])
async def test_shares_add_up_to_the_one_statement(
    engine: AsyncEngine, own_connections: list[int], breakdown: str | None
) -> None:
    names = await committed_people(engine, uuid4().hex[:8])
    by = {"breakdown": breakdown} if breakdown else {}
    for mode in MODES:
        whole = await figures(engine, names, 1, **mode, **by)
        assert own_connections == []
        assert whole[None].counts[0] > 0, mode
        assert whole[None].counts[-1] > 0, mode
        shared = await figures(engine, names, 3, **mode, **by)
        assert sorted(own_connections) == [1, 2], mode  # the first share on the session
        own_connections.clear()
        assert shared == whole, mode
        if breakdown:
            assert set(shared) == {None, "newsletter", "ads", "direct"}, mode


async def test_one_funnel_at_a_time_is_computed_in_shares(
    engine: AsyncEngine, own_connections: list[int]
) -> None:
    """While another funnel of the process is computed in shares, one more runs as one
    statement on its session: a busy process takes no more connections than that."""
    names = await committed_people(engine, uuid4().hex[:8])
    funnel_repository._FanOut.busy = True
    try:
        busy = await figures(engine, names, 3)
    finally:
        funnel_repository._FanOut.busy = False
    assert own_connections == []
    assert busy == await figures(engine, names, 1)


async def test_a_failing_share_fails_the_funnel_with_its_own_error(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A share whose connection fails stops the others and raises its own error (not a
    group of them: the API maps it as any), and the process may fan out again."""
    names = await committed_people(engine, uuid4().hex[:8])

    async def lost(engine: AsyncEngine, statement: str, params: dict[str, Any]) -> list[Any]:
        raise ConnectionResetError("the share's connection was lost")

    monkeypatch.setattr(FunnelRepository, "_on_own_connection", staticmethod(lost))
    with pytest.raises(ConnectionResetError):
        await figures(engine, names, 2)
    assert funnel_repository._FanOut.busy is False
