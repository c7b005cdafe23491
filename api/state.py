"""What the API process holds for its lifetime: engine, Redis, a lazily connected Temporal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cached_property

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.db import SessionFactory
from core.secrets import jwt_secret
from core.settings import Settings
from integrations.payments.gateway import PaymentGateway
from integrations.payments.stripe import StripeGateway
from services.analytics import AnalyticsRecorder
from services.tokens import AccessTokens, Revocations
from temporal.client import connect


class TemporalConnection:
    """Connects on first use and again after a failure, so the API starts (and reports
    itself not ready) while Temporal is still down, instead of refusing to start."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await connect(self._settings, timeout=3.0)
        return self._client


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: Redis
    temporal: TemporalConnection = field(init=False)
    access_tokens: AccessTokens = field(init=False)
    revocations: Revocations = field(init=False)
    analytics: AnalyticsRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.temporal = TemporalConnection(self.settings)
        ttl = self.settings.access_token_ttl_seconds
        self.access_tokens = AccessTokens(jwt_secret(self.settings), ttl)
        self.revocations = Revocations(self.redis, ttl)
        self.analytics = AnalyticsRecorder(self.settings.analytics_enabled)

    # Built on first use: each costs ~40 ms (a TLS context), and most processes need
    # neither (staff refunds; the Stripe sandbox's webhooks).
    @cached_property
    def payments(self) -> PaymentGateway:
        return StripeGateway.from_settings(self.settings)

    @cached_property
    def http(self) -> httpx.AsyncClient:
        """One outgoing HTTP client per process (the sandboxes' webhooks)."""
        return httpx.AsyncClient(timeout=5)

    async def aclose(self) -> None:
        if "http" in self.__dict__:
            await self.http.aclose()
