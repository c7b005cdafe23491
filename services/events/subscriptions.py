"""SQL for what the relays know: the (subscriber, event type) pairs of their code.

Workers of two versions run side by side during a rolling deploy, so no one relay's
code says which subscribers exist. Each relay writes its own pairs (``beat``) at least
every ``EVENT_RELAY_POLL_SECONDS``; a pair is *subscribed* while some relay has known it
within ``EVENT_SUBSCRIBER_GRACE_SECONDS``. Every relay fans out to every subscribed pair,
and a pending delivery is dropped only once it is older than that and its pair has not
been known within it (``RelayRepository.drop_pending_unknown_for``).

A pair no relay has known for far longer than that (``EVENT_SUBSCRIPTION_RETENTION_SECONDS``,
at least twice the grace: a subscriber taken out of the code, the workers of a release
long gone) is forgotten (``forget``): it says nothing the drop rule reads, since a pair not
known within the grace counts as unknown whether its row is there or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Table, delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import insert_rows
from models.events import EventSubscription

# (subscriber, event type)
Pair = tuple[str, str]


@dataclass(frozen=True)
class KnownSubscription:
    subscriber: str
    event_type: str
    first_known_at: datetime
    known_at: datetime


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def beat(self, pairs: Iterable[Pair]) -> None:
        """These pairs are known now (by the relay calling)."""
        rows = [{"subscriber": name, "event_type": type_} for name, type_ in sorted(set(pairs))]
        await insert_rows(self.session, self._beat_statement(), rows)

    # Every relay beats every few seconds with its ~80 pairs: a statement built once, not
    # a multi-VALUES one compiled at every beat (``core.db.insert_rows``, issue #15).
    @staticmethod
    @cache
    def _beat_statement() -> ReturningInsert[tuple[str]]:
        table: Table = SQLModel.metadata.tables[EventSubscription.__tablename__]
        return (
            insert(table)
            .on_conflict_do_update(
                index_elements=["subscriber", "event_type"], set_={"known_at": func.now()}
            )
            .returning(table.c.subscriber)
        )

    async def forget(self, unknown_for: timedelta) -> int:
        """Delete the pairs no relay has known for ``unknown_for`` (longer than any grace);
        how many. A relay beating one of them meanwhile keeps it (its ``known_at`` is
        re-read under the row's lock) or writes it anew."""
        deleted = await self.session.exec(
            delete(EventSubscription)
            .where(col(EventSubscription.known_at) < func.now() - unknown_for)
            .returning(col(EventSubscription.subscriber))
        )
        return len(deleted.all())

    async def subscribed(self, grace: timedelta) -> dict[str, set[str]]:
        """event type -> the subscribers some relay has known for it within ``grace``."""
        rows = await self.session.exec(
            select(col(EventSubscription.event_type), col(EventSubscription.subscriber)).where(
                col(EventSubscription.known_at) >= func.now() - grace
            )
        )
        subscribed: dict[str, set[str]] = {}
        for event_type, name in rows.all():
            subscribed.setdefault(event_type, set()).add(name)
        return subscribed

    async def all(self) -> list[KnownSubscription]:
        rows = await self.session.exec(
            select(EventSubscription).order_by(
                col(EventSubscription.subscriber), col(EventSubscription.event_type)
            )
        )
        return [
            KnownSubscription(r.subscriber, r.event_type, r.first_known_at, r.known_at)
            for r in rows.all()
        ]
