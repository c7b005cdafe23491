"""SQL for webhook endpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from models.webhooks import WebhookEndpoint


class WebhookEndpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        self.session.add(endpoint)
        await self.session.flush()
        await self.session.refresh(endpoint)
        return endpoint

    async def get(self, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint | None:
        query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        result = await self.session.exec(locked(query) if for_update else query)
        return result.one_or_none()

    async def page(self, *, offset: int, limit: int) -> tuple[list[WebhookEndpoint], int]:
        """Newest first, and how many there are."""
        rows = await self.session.exec(
            select(WebhookEndpoint)
            .order_by(col(WebhookEndpoint.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(select(func.count()).select_from(WebhookEndpoint))
        return list(rows.all()), total.one()

    async def save(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        self.session.add(endpoint)
        await self.session.flush()
        await self.session.refresh(endpoint)
        return endpoint

    async def delete(self, endpoint: WebhookEndpoint) -> None:
        await self.session.delete(endpoint)
        await self.session.flush()

    async def count_failure(self, endpoint_id: str, at: datetime) -> WebhookEndpoint | None:
        """One more failed delivery in the endpoint's current run of them (which started
        ``at`` if this is its first); the endpoint as it is now, None if it is gone or
        disabled. A disabled endpoint counts nothing: its deliveries in flight fail
        because it is disabled, not because it failed them (re-enabling starts a new
        count anyway)."""
        result = await self.session.exec(
            update(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.id) == endpoint_id,
                col(WebhookEndpoint.enabled).is_(True),
            )
            .values(
                consecutive_failures=col(WebhookEndpoint.consecutive_failures) + 1,
                failing_since=func.coalesce(col(WebhookEndpoint.failing_since), at),
            )
            .returning(WebhookEndpoint)
        )
        row = result.first()
        return None if row is None else row[0]

    async def disable_failing(
        self,
        endpoint_id: str,
        *,
        failures: int,
        failing_before: datetime,
        at: datetime,
        reason: str,
    ) -> bool:
        """Disable the endpoint if it is enabled with at least ``failures`` failed
        deliveries in a row, the first before ``failing_before``; False if it was not.
        Conditional under the row's lock: of concurrent give-ups one disables it."""
        result = await self.session.exec(
            update(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.id) == endpoint_id,
                col(WebhookEndpoint.enabled).is_(True),
                col(WebhookEndpoint.consecutive_failures) >= failures,
                col(WebhookEndpoint.failing_since) <= failing_before,
            )
            .values(enabled=False, disabled_at=at, disabled_reason=reason, updated_at=at)
            .returning(col(WebhookEndpoint.id))
        )
        return result.first() is not None

    async def clear_failures(self, endpoint_id: str) -> None:
        """A delivery succeeded: the run of failures is over (no write when there was none,
        so the common case takes no lock on the endpoint)."""
        await self.session.exec(
            update(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.id) == endpoint_id,
                col(WebhookEndpoint.consecutive_failures) > 0,
            )
            .values(consecutive_failures=0, failing_since=None)
        )
