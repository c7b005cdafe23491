"""The caller's notifications: a page of them, marking them read."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.notifications import NotificationPage, NotificationPublic, ReadAllResult
from services.notifications.repository import NotificationRepository


class NotificationInbox:
    def __init__(self, session: AsyncSession) -> None:
        self.notifications = NotificationRepository(session)

    async def page(self, user_id: str, *, unread: bool, page: int, limit: int) -> NotificationPage:
        rows, total = await self.notifications.page(
            user_id, unread=unread, offset=(page - 1) * limit, limit=limit
        )
        unread_count = total if unread else await self.notifications.unread_count(user_id)
        return NotificationPage(
            items=[NotificationPublic.of(r) for r in rows],
            total=total,
            page=page,
            limit=limit,
            unread_count=unread_count,
        )

    async def read(self, user_id: str, notification_id: str) -> NotificationPublic:
        """Mark it read (``NotificationNotFound`` unless it is the user's)."""
        row = await self.notifications.mark_read(user_id, notification_id, utcnow())
        return NotificationPublic.of(row)

    async def read_all(self, user_id: str) -> ReadAllResult:
        marked = await self.notifications.mark_all_read(user_id, utcnow())
        return ReadAllResult(marked=marked, unread_count=0)
