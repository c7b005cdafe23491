"""Recording analytics events (the funnel, searches, registrations, custom events)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, inspect
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.ids import IdPrefix, new_id
from models.analytics import AnalyticsEvent, AnalyticsEventLink, AnalyticsIdentity, person_key
from models.analytics_rollups import AnalyticsPerson
from models.users import User, UserStatus


class AnalyticsRepository:
    # The table's INSERT (Core: no ORM bulk-insert bookkeeping), built once.
    _insert_events = (
        insert(cast(Table, inspect(AnalyticsEvent).local_table))
        .values(received_at=func.now())
        .on_conflict_do_nothing()
    )

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: AnalyticsEvent) -> None:
        self.session.add(row)

    async def limit_statement_time(self, seconds: float) -> None:
        """This transaction's statements give up after ``seconds`` (a slow database makes
        the batch writer retry rather than hold its rows for ever)."""
        timeout = f"{max(1, int(seconds * 1000))}ms"
        await self.session.exec(select(func.set_config("statement_timeout", timeout, True)))

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Multi-row INSERTs; a row already written (a retried batch whose first commit
        went through) is left alone. ``received_at`` is the database's now().

        One statement for every batch, executed with the rows as parameters (SQLAlchemy
        sends them as multi-row VALUES): its SQL is compiled once per process. A
        ``values(rows)`` statement was compiled anew for every batch, 0.2 ms of CPU per
        row against 0.02, a tenth of an API process's work under product views."""
        if rows:
            await self.session.exec(self._insert_events, params=list(rows))

    async def linked_users(self, anonymous_ids: Collection[str]) -> dict[str, str]:
        """anonymous id → the user it signed in as, for those that did."""
        if not anonymous_ids:
            return {}
        found = await self.session.exec(
            select(AnalyticsIdentity.anonymous_id, AnalyticsIdentity.user_id).where(
                col(AnalyticsIdentity.anonymous_id).in_(list(anonymous_ids))
            )
        )
        return dict(found.all())

    async def erased_accounts(self, user_ids: Collection[str], *, hold: bool = False) -> set[str]:
        """Those of ``user_ids`` whose account was erased: an event for one is written
        for nobody (``AnalyticsRecorder.track``, the batch writer), as its erasure's
        ``pseudonymise`` left it. With ``hold`` the rows are share-locked (``FOR SHARE``,
        in id order) to the commit, as ``UserRepository.hold`` does: an erasure
        committing meanwhile waits for the events, which its ``user.deleted``
        subscriber then pseudonymises, and one committed first is seen here."""
        if not user_ids:
            return set()
        query = select(User.id, User.status).where(col(User.id).in_(sorted(user_ids)))
        if hold:
            query = locked(query.order_by(col(User.id)), read=True)
        rows = await self.session.exec(query)
        return {user_id for user_id, status in rows.all() if status == UserStatus.DELETED}

    async def link(self, anonymous_id: str, user_id: str) -> None:
        """Upsert: an anonymous id belongs to the last user who signed in with it."""
        statement = insert(AnalyticsIdentity).values(
            anonymous_id=anonymous_id, user_id=user_id, linked_at=func.now()
        )
        await self.session.exec(
            statement.on_conflict_do_update(
                index_elements=["anonymous_id"],
                set_={"user_id": statement.excluded.user_id, "linked_at": func.now()},
            )
        )

    async def reassign(self, person_ids: Collection[str], user_id: str) -> int:
        """Events counted for ``person_ids`` count for the user from now on; their
        ``received_at`` moves to now, so the rollups recompute the hours they fall in."""
        if not person_ids:
            return 0
        result = await self.session.exec(
            update(AnalyticsEvent)
            .where(col(AnalyticsEvent.person_id).in_(list(person_ids)))
            .values(person_id=user_id, received_at=func.now())
        )
        return int(result.rowcount)

    async def pseudonymise(self, user_id: str, pseudonym: str) -> int:
        """An erased account's events (and their funnel links and first-seen row) count
        for ``pseudonym`` instead, with no user id: every figure stays as it was (the
        same person, unnamed), nothing leads back to the account. Its anonymous ids are
        no longer linked to it. Returns how many events were unlinked."""
        events = await self.session.exec(
            update(AnalyticsEvent)
            .where(
                (col(AnalyticsEvent.person_id) == user_id)
                | (col(AnalyticsEvent.user_id) == user_id)
            )
            .values(person_id=pseudonym, user_id=None)
        )
        await self.session.exec(
            update(AnalyticsEventLink)
            .where(col(AnalyticsEventLink.person_id) == user_id)
            .values(person_id=pseudonym)
        )
        await self.session.exec(
            update(AnalyticsPerson)
            .where(col(AnalyticsPerson.person_id) == user_id)
            .values(person_id=pseudonym)
        )
        await self.session.exec(
            delete(AnalyticsIdentity).where(col(AnalyticsIdentity.user_id) == user_id)
        )
        return int(events.rowcount)


class AnalyticsRecorder:
    """Adds events to the caller's transaction, or nothing when ANALYTICS_ENABLED=false."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    async def track(
        self,
        session: AsyncSession,
        event: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: dict[str, Any] | None = None,
        hold_account: bool = False,
    ) -> AnalyticsEvent | None:
        """The event, in the caller's transaction. ``hold_account``: the account is
        share-locked to the commit (``erased_accounts(hold=True)``), for a caller that
        holds no row the erasure rewrites (a cart's event): otherwise an erasure could
        commit, and its ``user.deleted`` subscriber run, between this read and the
        commit, and the event keep the account's id. A caller holding the account's
        order row must not (the erasure, holding the account, waits for that row: a
        deadlock); the plain read is enough for it (below)."""
        if not self.enabled:
            return None
        event_id = new_id(IdPrefix.ANALYTICS)
        repository = AnalyticsRepository(session)
        if user_id and await repository.erased_accounts([user_id], hold=hold_account):
            # An order or a payment of an erased account goes on (3-D Secure answered
            # late, a webhook): its events still count, for nobody (the event alone, as
            # an event with no visitor does). Not for the account, whose analytics its
            # erasure already moved to a pseudonym, nor its cart (``session_id``), which
            # names the account. Without ``hold_account`` a plain read: the order's row,
            # locked by the caller before this, is also rewritten by the erasure, which
            # therefore commits before this read or after this transaction.
            user_id = session_id = None
        row = AnalyticsEvent(
            id=event_id,
            event=event,
            user_id=user_id,
            session_id=session_id,
            person_id=person_key(user_id, None, session_id, event_id),
            properties=properties or {},
        )
        repository.add(row)
        return row
