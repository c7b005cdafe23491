"""The ClickHouse side of analytics (README, "Growing out of one machine: ClickHouse"): the
events and identities tables and the funnel as ``windowFunnel``, run in-process with
chdb, ClickHouse's embedded engine; a ClickHouse server takes the same SQL.

This is the funnel's half of a ``ClickHouseAnalyticsStore``: ``funnel_counts`` gives the
people reaching each step, which the store's ``funnel(...)`` renders as the Postgres
store does. Not wired into the API: PostgreSQL is the store until one machine is not
enough. The repository takes any session with chdb's ``query``: ``chdb`` is a test
dependency only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

FunnelOrder = Literal["ordered", "strict"]
# windowFunnel's modes: "ordered" lets other events come between two steps, "strict"
# does not (any other event ends the chain, as PostHog's strict order).
WINDOW_FUNNEL_MODES: dict[str, str] = {"ordered": "", "strict": ", 'strict_order'"}
TIME = "DateTime64(3, 'UTC')"


class QueryResult(Protocol):
    def data(self) -> str: ...


class ClickHouseSession(Protocol):
    """What the repository needs of a connection: ``chdb.session.Session`` has it, and
    so would a thin client of a ClickHouse server's HTTP interface."""

    def query(self, sql: str, fmt: str = ..., udf_path: str = ..., params: Any = ...) -> Any: ...


@dataclass(frozen=True)
class ClickHouseEvent:
    id: str
    event: str
    person_id: str
    created_at: datetime
    received_at: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    properties: str = "{}"  # the JSON text, as PostgreSQL's jsonb renders it


@dataclass(frozen=True)
class FunnelStepCount:
    step: str
    people: int


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class ClickHouseAnalyticsRepository:
    """All ClickHouse SQL of analytics, over one chdb (or server) session."""

    def __init__(self, session: ClickHouseSession, database: str = "shopweave") -> None:
        self.session = session
        self.db = database

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        result: QueryResult = self.session.query(sql, "JSONCompact", params=params or {})
        rows: list[list[Any]] = json.loads(result.data())["data"]
        return rows

    def create_tables(self) -> None:
        self.session.query(f"CREATE DATABASE IF NOT EXISTS {self.db}")
        self.session.query(
            f"""
            CREATE TABLE IF NOT EXISTS {self.db}.analytics_events (
                id String,
                event LowCardinality(String),
                person_id String,
                user_id Nullable(String),
                anonymous_id Nullable(String),
                session_id Nullable(String),
                properties String,
                created_at {TIME},
                received_at {TIME}
            ) ENGINE = ReplacingMergeTree(received_at)
            PARTITION BY toYYYYMM(created_at)
            ORDER BY (event, created_at, id)
            """
        )
        self.session.query(
            f"""
            CREATE TABLE IF NOT EXISTS {self.db}.analytics_identities (
                anonymous_id String, user_id String, linked_at {TIME}
            ) ENGINE = ReplacingMergeTree(linked_at) ORDER BY anonymous_id
            """
        )

    def insert_events(self, events: Iterable[ClickHouseEvent]) -> int:
        lines = [
            json.dumps(
                {
                    "id": e.id,
                    "event": e.event,
                    "person_id": e.person_id,
                    "user_id": e.user_id,
                    "anonymous_id": e.anonymous_id,
                    "session_id": e.session_id,
                    "properties": e.properties,
                    "created_at": _time(e.created_at),
                    "received_at": _time(e.received_at),
                }
            )
            for e in events
        ]
        if lines:
            self.session.query(
                f"INSERT INTO {self.db}.analytics_events FORMAT JSONEachRow\n" + "\n".join(lines)
            )
        return len(lines)

    def link(self, anonymous_id: str, user_id: str, linked_at: datetime) -> None:
        self.session.query(
            f"INSERT INTO {self.db}.analytics_identities VALUES "
            f"({{a:String}}, {{u:String}}, {{t:{TIME}}})",
            params={"a": anonymous_id, "u": user_id, "t": _time(linked_at)},
        )

    def funnel_levels(
        self,
        steps: Sequence[str],
        start: datetime,
        end: datetime,
        window: timedelta,
        order: FunnelOrder,
    ) -> dict[int, int]:
        """People by the furthest step (1-based) they reached from an entry into the
        first step in [start, end), each next step within ``window`` of that entry; a
        guest who signed in counts once, as the user (the identities table)."""
        params: dict[str, Any] = {
            "start": _time(start),
            "end": _time(end),
            "reach": _time(end + window),
            "window": int(window.total_seconds() * 1000),
        }
        conditions = []
        for n, step in enumerate(steps):
            params[f"s{n}"] = step
            condition = f"e.event = {{s{n}:String}}"
            if n == 0:
                condition += (
                    f" AND e.created_at >= {{start:{TIME}}} AND e.created_at < {{end:{TIME}}}"
                )
            conditions.append(condition)
        only_steps = ""
        if order == "ordered":  # other events cannot matter: read the steps' ranges only
            only_steps = (
                "AND e.event IN (" + ", ".join(f"{{s{n}:String}}" for n in range(len(steps))) + ")"
            )
        rows = self._rows(
            f"""
            SELECT level, count() FROM (
                SELECT coalesce(i.user_id, e.person_id) AS person,
                       windowFunnel({{window:UInt64}}{WINDOW_FUNNEL_MODES[order]})(
                           toUInt64(toUnixTimestamp64Milli(e.created_at)),
                           {", ".join(conditions)}
                       ) AS level
                FROM {self.db}.analytics_events AS e FINAL
                LEFT JOIN (
                    SELECT anonymous_id, argMax(user_id, linked_at) AS user_id
                    FROM {self.db}.analytics_identities GROUP BY anonymous_id
                ) AS i ON i.anonymous_id = e.anonymous_id
                WHERE e.created_at >= {{start:{TIME}}} AND e.created_at < {{reach:{TIME}}}
                    {only_steps}
                GROUP BY person
            )
            WHERE level > 0
            GROUP BY level
            SETTINGS join_use_nulls = 1
            """,
            params,
        )
        return {int(level): int(people) for level, people in rows}


def funnel_counts(
    repository: ClickHouseAnalyticsRepository,
    steps: Sequence[str],
    start: datetime,
    end: datetime,
    window: timedelta,
    order: FunnelOrder = "ordered",
) -> list[FunnelStepCount]:
    """The people reaching each step: those whose furthest step is that one or later."""
    levels = repository.funnel_levels(steps, start, end, window, order)
    return [
        FunnelStepCount(step, sum(people for level, people in levels.items() if level > n))
        for n, step in enumerate(steps)
    ]
