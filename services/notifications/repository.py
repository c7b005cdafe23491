"""SQL for notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound
from core.ids import IdPrefix, id_after, new_id
from models.notifications import Notification


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    title = "No such notification"


@dataclass(frozen=True)
class NewNotification:
    user_id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    event_id: str


class NotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, new: NewNotification) -> str | None:
        """Insert, and return its id, unless (event, user) has one already (then None).
        The insert's trigger notifies ``shop_notification`` with the user's id, sent at commit.

        A user's notifications get increasing ids in the order they commit: the writer
        holds a per-user lock to its commit and takes an id above the user's newest. A
        stream resuming after an id (``Last-Event-ID``) therefore never skips one that
        committed late with a smaller id (two workers, two clocks)."""
        await self.session.exec(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"ntf:{new.user_id}", 0)))
        )
        newest = await self.newest_id(new.user_id)
        notification_id = new_id(IdPrefix.NOTIFICATION)
        if newest is not None and notification_id <= newest:
            notification_id = id_after(newest)
        inserted = await self.session.exec(
            insert(Notification)
            .values(
                id=notification_id,
                user_id=new.user_id,
                kind=new.kind,
                title=new.title,
                body=new.body,
                data=new.data,
                event_id=new.event_id,
            )
            .on_conflict_do_nothing(index_elements=["event_id", "user_id"])
            .returning(col(Notification.id))
        )
        stored: str | None = inserted.scalar_one_or_none()
        return stored

    async def delete_for_user(self, user_id: str) -> int:
        """Every notification of the user (an erased account): how many."""
        result = await self.session.exec(
            delete(Notification).where(col(Notification.user_id) == user_id)
        )
        return int(result.rowcount)

    async def newest_id(self, user_id: str) -> str | None:
        result = await self.session.exec(
            select(func.max(Notification.id)).where(Notification.user_id == user_id)
        )
        return result.one()

    async def page(
        self, user_id: str, *, unread: bool, offset: int, limit: int
    ) -> tuple[list[Notification], int]:
        """The user's notifications (only unread ones with ``unread``), newest first, and
        how many there are."""
        conditions = [col(Notification.user_id) == user_id]
        if unread:
            conditions.append(col(Notification.read_at).is_(None))
        rows = await self.session.exec(
            select(Notification)
            .where(*conditions)
            .order_by(col(Notification.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(
            select(func.count()).select_from(Notification).where(*conditions)
        )
        return list(rows.all()), int(total.one())

    async def unread_count(self, user_id: str) -> int:
        result = await self.session.exec(
            select(func.count())
            .select_from(Notification)
            .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
        )
        return int(result.one())

    async def after(self, user_id: str, after_id: str | None, limit: int) -> list[Notification]:
        """The user's notifications after ``after_id`` (all when None), oldest first."""
        query = select(Notification).where(col(Notification.user_id) == user_id)
        if after_id is not None:
            query = query.where(col(Notification.id) > after_id)
        rows = await self.session.exec(query.order_by(col(Notification.id)).limit(limit))
        return list(rows.all())

    async def mark_read(self, user_id: str, notification_id: str, at: datetime) -> Notification:
        """Mark one of the user's notifications read (kept as it was if it already is);
        ``NotificationNotFound`` if the user has no such notification."""
        row = await self.session.get(Notification, notification_id)
        if row is None or row.user_id != user_id:
            raise NotificationNotFound(f"no notification {notification_id}")
        if row.read_at is None:
            # Conditional: of two calls at once, the first one's time stands.
            await self.session.exec(
                update(Notification)
                .where(col(Notification.id) == notification_id, col(Notification.read_at).is_(None))
                .values(read_at=at)
            )
            await self.session.refresh(row)
        return row

    async def mark_all_read(self, user_id: str, at: datetime, up_to: str | None = None) -> int:
        """Mark the user's unread notifications read (only those up to ``up_to``, the
        newest the user has seen, when given); how many were."""
        conditions = [col(Notification.user_id) == user_id, col(Notification.read_at).is_(None)]
        if up_to is not None:
            conditions.append(col(Notification.id) <= up_to)
        result = await self.session.exec(update(Notification).where(*conditions).values(read_at=at))
        return int(result.rowcount)
