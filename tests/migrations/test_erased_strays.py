"""a7c0de140028 sweeps the analytics an erased account was given back before the rollup
swept them: events received after the erasure still under the account, and the
``analytics_people`` row they kept (or that no event names any more). Against real
PostgreSQL, from the revision before. (On an empty database it runs in
``test_migrations_go_up_down_and_up_again``.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from migrations.runner import downgrade, upgrade
from services.analytics.rollup_repository import RollupRepository
from tests.migrations.conftest import asyncpg_url

ERASED_AT = datetime(2026, 1, 10, tzinfo=UTC)
# id: (person_id, user_id, anonymous_id, session_id, received_at)
EVENTS: dict[str, tuple[str, str | None, str | None, str | None, datetime]] = {
    # Before the erasure: its subscriber gave it to the pseudonym; left alone.
    "ae_before": ("erased:p1", None, None, None, datetime(2026, 1, 5, tzinfo=UTC)),
    # After it (a worker of an earlier release wrote them), before the rollup swept such.
    "ae_stray_visitor": (
        "user_erased",
        "user_erased",
        "anon_1",
        "cart_1",
        datetime(2026, 1, 11, tzinfo=UTC),
    ),
    "ae_stray_alone": ("user_erased", "user_erased", None, None, ERASED_AT),
    # Another account's, alive.
    "ae_kept": ("user_kept", "user_kept", "anon_2", None, datetime(2026, 1, 11, tzinfo=UTC)),
}
PEOPLE = ("erased:p1", "user_erased", "user_gone", "user_kept")


async def _fill(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for user_id, status, deleted_at in (
            ("user_erased", "deleted", ERASED_AT),
            ("user_gone", "deleted", ERASED_AT),
            ("user_kept", "active", None),
        ):
            await conn.execute(
                "INSERT INTO users (id, email, name, password_hash, status, deleted_at, "
                "created_at, updated_at) VALUES ($1, $2, $3, 'x', $4, $5, now(), now())",
                user_id,
                f"{user_id}@example.com",
                user_id,
                status,
                deleted_at,
            )
        for event_id, (person, user, anonymous, session, received) in EVENTS.items():
            await conn.execute(
                "INSERT INTO analytics_events (id, event, user_id, session_id, anonymous_id, "
                "person_id, properties, created_at, received_at) "
                "VALUES ($1, 'product_view', $2, $3, $4, $5, '{}', $6, $6)",
                event_id,
                user,
                session,
                anonymous,
                person,
                received,
            )
        for person in PEOPLE:
            await conn.execute(
                "INSERT INTO analytics_people (person_id, first_seen_at) VALUES ($1, $2)",
                person,
                ERASED_AT,
            )
    finally:
        await conn.close()


EVENT_ROWS = "SELECT id, person_id, user_id, session_id, received_at FROM analytics_events"
PEOPLE_ROWS = "SELECT person_id FROM analytics_people"


def _state(events: Sequence[Sequence[Any]], people: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {"events": {r[0]: tuple(r[1:]) for r in events}, "people": sorted(r[0] for r in people)}


async def _read(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return _state(await conn.fetch(EVENT_ROWS), await conn.fetch(PEOPLE_ROWS))
    finally:
        await conn.close()


async def _swept_again(database_url: str) -> dict[str, Any]:
    """The rollup's own sweep over every event (no watermark), rolled back: what it would
    change is what the migration left for it."""
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            await RollupRepository(session).unlink_erased(None)
            events = (await session.exec(text(EVENT_ROWS))).all()  # type: ignore[call-overload]
            people = (await session.exec(text(PEOPLE_ROWS))).all()  # type: ignore[call-overload]
            await session.rollback()
    finally:
        await engine.dispose()
    return _state(events, people)


def test_an_erased_accounts_strays_are_swept_once(scratch_database: str) -> None:
    upgrade(scratch_database, "a7c0de140027")
    url = asyncpg_url(scratch_database)
    asyncio.run(_fill(url))
    migrated_at = datetime.now(UTC)

    upgrade(scratch_database, "a7c0de140028")
    swept = asyncio.run(_read(url))
    events = swept["events"]
    # For their visitor, else for the event alone; no user id, no cart; received now, so
    # the next rollup recomputes their hours and relinks them.
    assert events["ae_stray_visitor"][:3] == ("anon:anon_1", None, None)
    assert events["ae_stray_alone"][:3] == ("ae:ae_stray_alone", None, None)
    assert all(events[e][3] >= migrated_at for e in ("ae_stray_visitor", "ae_stray_alone"))
    for untouched in ("ae_before", "ae_kept"):
        person, user, _, session, received = EVENTS[untouched]
        assert events[untouched] == (person, user, session, received)
    # No people row of an erased account is left; the others stay.
    assert swept["people"] == ["erased:p1", "user_kept"]

    # Exactly the rollup's rule: its sweep, over every event, finds nothing more to do.
    assert asyncio.run(_swept_again(scratch_database)) == swept
    # Down is a no-op; up again finds nothing (the strays keep their receipt time).
    downgrade(scratch_database, "a7c0de140027")
    assert asyncio.run(_read(url)) == swept
    upgrade(scratch_database)
    assert asyncio.run(_read(url)) == swept
