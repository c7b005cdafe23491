"""The async engine and sessions (asyncpg). One code path: PostgreSQL only."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple, cast

from sqlalchemy import CTE, ColumnElement, Row, Select, delete, event, select, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import InstrumentedAttribute, Mapped
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import DependencyUnavailable
from core.instrumentation import trace_engine
from core.settings import Settings
from core.telemetry import Tracing

SessionFactory = async_sessionmaker[AsyncSession]
Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])
Columns = TypeVarTuple("Columns")


def require_database_url(settings: Settings) -> str:
    url = settings.resolved_database_url
    if not url:
        raise DependencyUnavailable(
            "no database configured: start the stack with `shop dev` "
            "(or pass its --data-dir), or set DATABASE_URL",
            code="database_not_configured",
        )
    return url


def asyncpg_dsn(settings: Settings) -> str:
    """The database URL as asyncpg takes it (without SQLAlchemy's driver name): for the
    raw connections that ``LISTEN``."""
    return require_database_url(settings).replace("postgresql+asyncpg://", "postgresql://", 1)


# A pooled connection is replaced after this long, so one that a firewall or load
# balancer dropped while idle is not handed out for ever (see ``_closed_is_replaced``).
POOL_RECYCLE_SECONDS = 300


def create_engine(
    settings: Settings, url: str | None = None, *, tracing: Tracing | None = None
) -> AsyncEngine:
    """The pool for ``url`` (default: the configured database); with ``tracing`` that
    exports, a span per statement."""
    engine = create_async_engine(
        url or require_database_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=POOL_RECYCLE_SECONDS,
        echo=settings.db_echo,
    )
    event.listen(engine.sync_engine, "checkout", _closed_is_replaced)
    event.listen(engine.sync_engine, "do_connect", _unreachable_is_named)
    trace_engine(engine, tracing)
    return engine


class DatabaseUnreachable(ConnectionError):
    """A connection to the database could not be opened (refused, no such socket, no
    answer in time). asyncpg raises the bare ``OSError`` and SQLAlchemy passes it on as it
    is: named, so that the API answers it as the database's outage, not as any
    ``OSError`` of ours (a file that would not open)."""


def _unreachable_is_named(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # TimeoutError (no answer in time) is one too
        raise DatabaseUnreachable(f"the database could not be reached: {exc}") from exc


def _closed_is_replaced(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection whose server closed it (a restart, a terminated backend) is
    replaced at checkout, as ``pool_pre_ping`` would, but without a round trip: asyncpg
    knows a closed socket locally. ``pool_pre_ping`` cost three round trips (BEGIN, a
    ping, ROLLBACK) on every checkout, that is every request and activity, more than a
    catalogue read itself on a busy machine."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: objects stay readable after the one commit at the boundary.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def create_read_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions for reads that need no transaction: each statement runs on its own
    (autocommit), so a read costs one round trip, not BEGIN, the read and COMMIT (and a
    connection's liveness ping one, not three). Same pool as ``engine``. Not for writes,
    nor for ``SET LOCAL``."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        class_=AsyncSession,
        expire_on_commit=False,
    )


def locked(
    query: Query, *, read: bool = False, skip_locked: bool = False, key_share: bool = False
) -> Query:
    """``query`` with ``FOR UPDATE`` (``read``: ``FOR SHARE``; ``key_share``: ``FOR NO KEY
    UPDATE``), its rows loaded as committed now: the one way to take a row lock.

    The lock re-reads the rows, but the session keeps the attributes of a row it had
    loaded before (earlier in the transaction, or in one it committed, as
    ``expire_on_commit=False`` keeps them) unless told to overwrite them
    (``populate_existing``): decided from that stale copy, two parcels shipping at once
    left their order partially shipped. Rows the session has not loaded cost nothing more.

    The order of locks, for the rows of one order: a return's row, then the order's
    payment row, then the order's row (``FOR UPDATE``, or the ``FOR KEY SHARE`` that a
    row referencing it takes, such as a timeline entry). A refund holds the payment row
    across its provider call and then writes the order's timeline; recording a provider
    answer moves the order under the payment row's lock; authorisation checks the order
    under it too. Two transactions taking two of these rows in opposite orders can each
    wait for the other: a deadlock (PostgreSQL aborts one after ``deadlock_timeout``).

    The order of locks, for the rows of one customer: the account's row first, then their
    orders' rows, then their carts' (a guest's cart being merged before theirs). The
    account is locked in the strongest mode the transaction will take it in, from the
    start: ``UserRepository.lock`` (``FOR NO KEY UPDATE``) by a transaction that writes
    it (a sign-in's rehash, a profile change, the erasure), ``UserRepository.hold``
    (``FOR SHARE``) by one that writes for the person (checkout, a cart's change, a sign-in's merge,
    ``CartService.hold_owner``); a hold later upgraded to a write waits for every other
    holder, and one of them waiting for a row the first holds is a deadlock. Checkout
    holds the account, then locks the cart; a sign-in locks the account
    (``AuthService.authenticate``), then the guest's cart and theirs; a cart's change
    holds the account, then locks the cart; the erasure locks the account, rewrites the
    orders, then closes the cart (``cart_reminders.account_deleted``); a workflow's step
    locks the order, then its cart, and takes no lock on the account after those. A
    refresh holds the account, then locks its session (``RefreshTokenRepository
    .lock_family``, an advisory lock), then its token's row, and a reused token's refresh
    revokes the session's rows under those (the erasure and a password change revoke the
    account's tokens after they locked the account); a sign-out locks the account, then
    its sessions, then their tokens' rows, and reads the token it was given without a
    lock to learn whose it is: another account's token is never locked
    (``AuthService.logout``).
    """
    return query.with_for_update(
        read=read, skip_locked=skip_locked, key_share=key_share
    ).execution_options(populate_existing=True)


def locked_batch(query: Query) -> CTE:
    """A batch job's rows: ``query`` (ordered to a unique key, with its ``LIMIT``) locked
    ``FOR UPDATE SKIP LOCKED`` (rows another transaction holds are left for the next
    batch), as a ``MATERIALIZED`` CTE named ``chosen``: the statement that deletes or
    moves ``WHERE key IN (SELECT … FROM chosen)`` may rescan it, and a rescan of a plain
    subquery skips the rows already taken and takes more than the ``LIMIT``."""
    return locked(query, skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")


async def delete_batch(
    session: AsyncSession,
    key: Mapped[Any],
    query: Select[*tuple[Any, ...]],
    *still: ColumnElement[bool],
) -> int:
    """Delete a batch job's rows: those ``query`` chooses by their ``key`` (its only
    column; ``locked_batch``), where ``still`` holds of them once locked (a row taken
    back meanwhile is kept). How many were deleted."""
    chosen = locked_batch(query)
    column = cast(InstrumentedAttribute[Any], key)
    deleted = await session.exec(
        delete(column.class_)
        .where(column.in_(select(chosen.c[column.key])), *still)
        .returning(column)
    )
    return len(deleted.all())


async def insert_rows(
    session: AsyncSession, statement: ReturningInsert[Any], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows`` with ``statement``, an INSERT on a table built once (with its
    ``ON CONFLICT`` if any, and a ``RETURNING``), as one multi-row INSERT on the session's
    connection (what the session has staged is flushed first, as its own statements do).

    The one way to insert several rows on a hot path: ``insert(Model).values([...])`` is
    compiled again at every call, since SQLAlchemy caches no multi-VALUES statement (its
    cache key is ``None``), and runs the ORM's bulk-insert steps besides (issue #15: the
    relay's fan-out, its beat, an order's lines and its stock rows). A statement built once
    and given the rows as parameter sets is compiled once and expanded per call into one
    multi-row INSERT by SQLAlchemy's *insertmanyvalues*; the ``RETURNING`` is what selects
    that path on asyncpg, without which each row would be an INSERT of its own."""
    if not rows:
        return
    await session.flush()
    connection = await session.connection()
    await connection.execute(statement, list(rows))


async def first_row(
    session: AsyncSession, statement: Select[*Columns], params: Mapping[str, Any]
) -> Row[*Columns] | None:
    """The first row of ``statement``, a Core read of columns built once (``@cache``, with
    bind parameters), run on the session's connection with ``params``: not the ORM's
    execute path (its compile state, loading context, identity map and autoflush), what
    an ORM read costs even when its statement is built once (issue #15). For a caller
    that reads values, not a row it changes through the ORM; what the session has staged
    is not flushed first."""
    connection = await session.connection()
    return (await connection.execute(statement, params)).first()


# Per engine: work that keeps one connection while it takes another from the same pool.
_HOLDERS: weakref.WeakKeyDictionary[object, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def holders(factory: SessionFactory) -> asyncio.Semaphore:
    """What work that keeps a connection while it takes a second from the same pool enters
    first (an email sent under its account's hold, an event's handler whose email books
    itself in transactions of its own). With as many such as the pool has connections,
    each waited for another's second until the pool's timeout and failed: at most half
    the pool's connections enter at once in a process, so the others always free one.
    Never entered twice by one task (it would wait for itself)."""
    bind = factory.kw.get("bind")
    if bind is None:
        return asyncio.Semaphore(1)
    found = _HOLDERS.get(bind)
    if found is None:
        size = getattr(getattr(bind, "pool", None), "size", None)
        kept = int(size()) if callable(size) else 1
        found = _HOLDERS[bind] = asyncio.Semaphore(max(1, kept // 2))
    return found


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session whose work commits once on success and rolls back on any error."""
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def autocommit(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session whose statements each commit on their own: one round trip per statement,
    no BEGIN and COMMIT around it. For one write that must stand whatever comes after it
    (an attempt counted before the work that may fail), and reads."""
    async with factory() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
