"""The caller's notifications: a page of them, marking them read."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ValidationFailed
from core.ids import IdPrefix, is_valid_id
from models.base import utcnow
from models.notifications import NotificationPage, NotificationPublic, ReadAllResult
from services.notifications.repository import NotificationRepository


class InvalidNotificationId(ValidationFailed):
    code = "invalid_notification_id"
    title = "Not a notification id"


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

    async def read_all(self, user_id: str, up_to: str | None = None) -> ReadAllResult:
        """Mark the user's unread notifications read: those up to ``up_to`` (the newest
        the user has seen) when given, so that one written meanwhile stays unread."""
        if up_to is not None and not is_valid_id(up_to, IdPrefix.NOTIFICATION):
            raise InvalidNotificationId(f"upTo {up_to!r} is not a notification id (ntf_…)")
        marked = await self.notifications.mark_all_read(user_id, utcnow(), up_to)
        unread = await self.notifications.unread_count(user_id)
        return ReadAllResult(marked=marked, unread_count=unread)
