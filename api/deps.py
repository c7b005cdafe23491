"""Dependency aliases endpoints take (Polar style: ``Annotated`` names, no wiring in routes)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from api.problems import REDIS_UNAVAILABLE, raises
from api.state import AppState
from core.settings import Settings
from services.analytics.postgres import PostgresAnalyticsStore
from services.analytics.store import AnalyticsStore

log = logging.getLogger(__name__)


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a hand-off to another thread and back (and a
# contended GIL) on every request, which py-spy showed as a sixth of a catalogue read.
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.shop
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_settings(state: State) -> Settings:
    return state.settings


# A list's page and its size (ARCHITECTURE §4: lists are paginated, `page` and `limit` up
# to 100, and answer `items` and `total`, ``models.base.Page``): what every list takes.
Pagination = Annotated[int, Query(ge=1, le=10_000)]
Limit = Annotated[int, Query(ge=1, le=100)]

AfterCommit = Callable[[], Awaitable[object]]
_AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run ``action`` once this request's transaction has committed (never if it fails).

    For effects outside the database that must not happen for a rolled-back change,
    such as starting a workflow. A failing action is logged; the request still succeeds,
    since what it committed stands (and e.g. the workflow-start relay catches up).
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def get_session(state: State) -> AsyncIterator[AsyncSession]:
    """One session a request; it commits once, at the boundary, when the endpoint returns
    (before the response is sent, so a failed commit is an error response, not a lie)."""
    async with state.sessions() as session:
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            await session.rollback()
            raise
        for action in session.info.pop(_AFTER_COMMIT, []):
            try:
                await action()
            except Exception:
                log.exception("after-commit action failed")


async def release_connection(session: AsyncSession) -> None:
    """Give the request's database connection back to the pool (ending its read-only
    transaction) before the request waits a long time for something else, so that
    waiting clients do not exhaust the pool. The session reconnects if used again."""
    await session.close()


async def get_read_session(state: State) -> AsyncIterator[AsyncSession]:
    """A session for reads only, in autocommit (``create_read_session_factory``):
    nothing to commit, and a read is one round trip."""
    async with state.read_sessions() as session:
        yield session


@raises(REDIS_UNAVAILABLE)
async def get_redis(state: State) -> Redis:
    """Redis, for an endpoint that reads or writes it on the request's path: one that
    takes it answers 503 ``dependency_unavailable`` when Redis does not (its OpenAPI
    entry says so, ``api/openapi.py``)."""
    return state.redis


AppSettings = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
RedisClient = Annotated[Redis, Depends(get_redis)]


# A visitor's id before sign-in, chosen by the client (analytics: product views, searches
# and tracked events carry it; signing in with it links them to the user).
ANONYMOUS_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
ANONYMOUS_ID = re.compile(ANONYMOUS_ID_PATTERN)
AnonymousIdHeader = Annotated[
    str | None,
    Header(
        alias="X-Anonymous-Id",
        pattern=ANONYMOUS_ID_PATTERN,
        description="The visitor's anonymous id (analytics), before sign-in",
    ),
]

# The request's Idempotency-Key, for an endpoint whose provider call takes its own key
# from it (a staff refund). The middleware (api/idempotency.py) checks it and replays a
# stored answer; the OpenAPI declares it once for every creating POST (api/openapi.py).
IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", include_in_schema=False)
]


async def last_event_id(
    header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=100,
            description="The `id` of the last event received: the stream resumes after it",
        ),
    ] = None,
    query: Annotated[
        str | None,
        Query(
            alias="lastEventId",
            max_length=100,
            description="The same, where an EventSource polyfill sends it on a reconnect "
            "(`event-source-polyfill`: a header would need a CORS preflight); "
            "`Last-Event-ID` wins when both are given",
            examples=["ntf_01JEX4Q8Z3K5M7N9P1R3T5V7X9"],
        ),
    ] = None,
) -> str | None:
    """Where a live stream resumes: the ``Last-Event-ID`` an EventSource sends back when
    it reconnects, else the ``lastEventId`` query parameter a polyfill sends instead. A
    blank header is none (the query's then)."""
    if header is not None and header.strip():
        return header
    return query


# The resume point a live stream's request carries (header or query), None without one.
LastEventId = Annotated[str | None, Depends(last_event_id)]


async def analytics_store(session: DbSession, state: State) -> AnalyticsStore:
    """The one way routes read analytics (PostgreSQL today; README "Growing out of one
    machine: ClickHouse")."""
    return PostgresAnalyticsStore(
        session, state.dashboards, parallelism=state.settings.analytics_parallelism
    )


AnalyticsReader = Annotated[AnalyticsStore, Depends(analytics_store)]
