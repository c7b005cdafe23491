"""Recording analytics events (the funnel, searches, registrations, custom events)."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import IdPrefix, new_id
from models.analytics import AnalyticsEvent, person_key


class AnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: AnalyticsEvent) -> None:
        self.session.add(row)


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
    ) -> AnalyticsEvent | None:
        if not self.enabled:
            return None
        event_id = new_id(IdPrefix.ANALYTICS)
        row = AnalyticsEvent(
            id=event_id,
            event=event,
            user_id=user_id,
            session_id=session_id,
            person_id=person_key(user_id, None, session_id, event_id),
            properties=properties or {},
        )
        AnalyticsRepository(session).add(row)
        return row
