"""The funnel's SQL run: every step's figures computed in the database (the statement
is ``funnel_statements``'s), on the session or in shares of the people side by side, or
each entered person's events for the walk in ``funnel_walk``."""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.funnel_statements import (
    WINDOW,
    Breakdown,
    entry,
    figures_params,
    figures_statement,
    statement_params,
    walked,
)
from services.analytics.funnel_walk import FunnelOrder, WalkRules
from services.analytics.ranges import TimeRange
from services.analytics.rollups import OVERLAP, RollupRepository


@dataclass(frozen=True)
class StepFigures:
    """One group's figures per step: people, people still inside the window, and the
    median seconds from the previous step (``None`` for the first step or nobody)."""

    counts: list[int]
    in_window: list[int]
    medians: list[float | None]


# How the figures statement is planned, set for its transaction in one round trip:
# - enough memory for the per-person hash tables of ~100k people without spilling;
# - no nested loops: the planner sees each step's people as a handful (it cannot estimate
#   a grouped CTE) and probes the person index once per person, a random read each;
#   reading the step's events once by time and hashing them is steady at any size (10
#   million events: README);
# - in shares, no parallel workers of PostgreSQL's own: the shares already keep the cores
#   busy, and seeing a share's fewer people the planner chose a parallel sort where one
#   process hashes faster (CPU a call 1.4 s in one statement, 2.4 s in two shares with
#   workers: README).
_PLANNED = {"work_mem": "64MB", "enable_nestloop": "off"}
_SHARE_PLANNED = _PLANNED | {"max_parallel_workers_per_gather": "0", "enable_sort": "off"}


def _planner(settings: dict[str, str]) -> str:
    return "SELECT " + ", ".join(f"set_config('{k}', '{v}', true)" for k, v in settings.items())


def _planner_defaults(settings: dict[str, str]) -> str:
    """Later statements of the transaction planned as usual (``RESET`` for each)."""
    names = ", ".join(f"'{name}'" for name in settings)
    return f"SELECT set_config(name, reset_val, true) FROM pg_settings WHERE name IN ({names})"


@dataclass
class _GroupFigures:
    """One group's figures summed over the shares: the median is taken of every share's
    gaps together, so it is the median of everyone's."""

    counts: list[int]
    in_window: list[int]
    gaps: list[list[float]]

    @classmethod
    def empty(cls, n: int) -> _GroupFigures:
        return cls([0] * n, [0] * n, [[] for _ in range(n)])

    def add(self, row: Any, n: int) -> None:
        for k in range(n):
            self.counts[k] += int(row[f"c{k}"])
            if k:
                self.in_window[k] += int(row[f"w{k}"])
                self.gaps[k].extend(row[f"m{k}"] or ())

    def figures(self) -> StepFigures:
        medians = [
            statistics.median(gaps) if k and gaps else None for k, gaps in enumerate(self.gaps)
        ]
        return StepFigures(self.counts, self.in_window, medians)


class _FanOut:
    """Shares in flight in this process: one funnel at a time is computed in shares (the
    cores are what it wins, and another funnel already has them), so a busy process does
    not take more connections than it would for one statement each."""

    busy = False


class FunnelRepository:
    def __init__(self, session: AsyncSession, parallelism: int = 1) -> None:
        self.session = session
        # Connections one funnel reads on side by side (``Settings.analytics_parallelism``).
        self.parallelism = parallelism

    async def figures(
        self, rules: WalkRules, by: Breakdown | None, time_range: TimeRange, now: datetime
    ) -> dict[str | None, StepFigures]:
        """Every step's figures, computed in the database, by breakdown value (``None``:
        everyone). With ``parallelism`` above 1, on an engine, and no other funnel of this
        process being computed so: in that many shares of the people side by side, the
        first on the session, the others each on a connection of their own (a request's
        session has written nothing these would not see)."""
        linked_since = await self._linked_since(rules)
        linked = linked_since is not None
        params = figures_params(rules, time_range, now, linked_since)
        engine = self.session.bind
        if self.parallelism < 2 or _FanOut.busy or not isinstance(engine, AsyncEngine):
            found = await self._on_session(
                figures_statement(rules, by, linked=linked), params, _PLANNED
            )
        else:
            statement = figures_statement(rules, by, linked=linked, shared=True)
            shares = [
                params | {"parts": self.parallelism, "part": k} for k in range(self.parallelism)
            ]
            _FanOut.busy = True
            try:
                # A share that fails stops the others (a gather would leave them running on
                # a request that has ended), and its error is the request's.
                async with asyncio.TaskGroup() as group:
                    answers = [
                        group.create_task(self._on_session(statement, shares[0], _SHARE_PLANNED)),
                        *(
                            group.create_task(self._on_own_connection(engine, statement, share))
                            for share in shares[1:]
                        ),
                    ]
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None
            finally:
                _FanOut.busy = False
            found = [row for answer in answers for row in answer.result()]
        n = len(rules.steps)
        groups: dict[str | None, _GroupFigures] = {}
        for row in found:
            key = None if row["total"] else str(row["grp"])
            groups.setdefault(key, _GroupFigures.empty(n)).add(row, n)
        return {key: group.figures() for key, group in groups.items()}

    @staticmethod
    async def _on_own_connection(
        engine: AsyncEngine, statement: str, params: dict[str, Any]
    ) -> list[Any]:
        """A share's ``statement`` in a transaction of its own on a connection of
        ``engine``."""
        async with engine.connect() as connection:
            await connection.execute(text(_planner(_SHARE_PLANNED)))
            rows = await connection.execute(text(statement), params)
            return list(rows.mappings().all())

    async def _on_session(
        self, statement: str, params: dict[str, Any], settings: dict[str, str]
    ) -> list[Any]:
        await self.session.exec(text(_planner(settings)))  # type: ignore[call-overload]
        rows = await self.session.exec(text(statement), params=params)  # type: ignore[call-overload]
        found = list(rows.mappings().all())
        await self.session.exec(text(_planner_defaults(settings)))  # type: ignore[call-overload]
        return found

    async def _linked_since(self, rules: WalkRules) -> datetime | None:
        """For the walked modes: the links are current for everyone without an event
        received after this (the rollup's watermark, less the overlap its runs read
        again); None before the first run (no links read)."""
        if not walked(rules):
            return None
        watermark = await RollupRepository(self.session).watermark()
        return None if watermark is None else watermark - OVERLAP

    async def paths(
        self, rules: WalkRules, by: Breakdown | None, time_range: TimeRange
    ) -> list[tuple[str, float, list[tuple[int | None, float]]]]:
        """Each entered person's breakdown value, entry time and events inside the window
        (the steps' events; every event for ``strict``), oldest first: times in seconds
        since the epoch, events as their step's index (None: not a step)."""
        only_steps = ""
        if rules.order is not FunnelOrder.STRICT:
            only_steps = " AND e.event = ANY(CAST(:steps AS text[]))"
        order = "ORDER BY e.created_at, e.id"
        sql = f"""WITH {entry(by, False)}
SELECT c.grp, CAST(extract(epoch FROM c.t0) AS double precision) AS entered_at,
  array_agg(array_position(CAST(:steps AS text[]), CAST(e.event AS text)) - 1 {order}) AS steps,
  array_agg(CAST(extract(epoch FROM e.created_at) AS double precision) {order}) AS ats
FROM entry c JOIN analytics_events e ON e.person_id = c.person_id
WHERE e.created_at >= :start AND e.created_at <= :horizon
  AND e.created_at >= c.t0 AND e.created_at <= c.t0 + {WINDOW}{only_steps}
GROUP BY c.person_id, c.grp, c.t0"""
        work_mem = {"work_mem": _PLANNED["work_mem"]}
        await self.session.exec(text(_planner(work_mem)))  # type: ignore[call-overload]
        rows = await self.session.exec(
            text(sql),  # type: ignore[call-overload]
            params=statement_params(rules, time_range),
        )
        return [
            (str(grp), entered_at, list(zip(steps, ats, strict=True)))
            for grp, entered_at, steps, ats in rows.all()
        ]
