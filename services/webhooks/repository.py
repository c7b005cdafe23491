"""SQL for webhook endpoints."""

from __future__ import annotations

from sqlalchemy import func
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
