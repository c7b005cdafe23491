"""What the API process holds for its lifetime: engine, Redis, a lazily connected Temporal."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import SessionFactory, asyncpg_dsn, create_read_session_factory
from core.notifications import ChannelListener
from core.secrets import jwt_secret, warn_unverifiable_webhooks
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from integrations.payments.gateway import PaymentGateway
from integrations.payments.stripe import StripeGateway
from integrations.shipping.factory import build_shipping_provider
from integrations.shipping.provider import ShippingProvider
from services.analytics import AnalyticsRecorder
from services.analytics.dashboard_cache import DashboardCache
from services.analytics.ingest import EventBuffer
from services.catalog.answers import Answers
from services.catalog.cache import LocalEntries
from services.catalog.pricing import PriceBookCache
from services.catalog.search import SearchEngines
from services.catalog.stock_view import CHANNEL as STOCK_CHANNEL
from services.catalog.stock_view import StockView
from services.catalog.versions import CHANNEL as CATALOG_CHANNEL
from services.catalog.versions import CatalogVersion
from services.notifications.stream import CHANNEL as NOTIFICATION_CHANNEL
from services.notifications.stream import NotificationFeed
from services.order_watch import CHANNEL as ORDER_CHANNEL
from services.order_watch import OrderWatch
from services.stream_slots import StreamSlots
from services.stream_tickets import StreamTickets
from services.tokens import AccessTokens, Revocations
from temporal.clients import TemporalConnection, WorkflowClients


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: Redis
    # Autocommit sessions on the same pool: catalogue reads served from the cache.
    read_sessions: SessionFactory = field(init=False)
    temporal: TemporalConnection = field(init=False)
    workflows: WorkflowClients = field(init=False)
    access_tokens: AccessTokens = field(init=False)
    revocations: Revocations = field(init=False)
    analytics: AnalyticsRecorder = field(init=False)
    # Tracked events, product views and searches: written in batches off the request.
    ingest: EventBuffer = field(init=False)
    # This process's copy of the hot catalogue cache entries (current version only).
    catalog_entries: LocalEntries = field(init=False, default_factory=LocalEntries)
    # Catalogue reads price with this process's price book, reused for a second.
    prices: PriceBookCache = field(init=False, default_factory=PriceBookCache)
    # Searches read the search index when it is ready, PostgreSQL otherwise.
    search: SearchEngines = field(init=False)
    # Dashboards reused until the rollups' watermark moves (each rollup run).
    dashboards: DashboardCache = field(init=False)
    # Catalogue reads show this process's view of the available stock and answer with
    # the catalogue version it holds, both kept by notifications (issue #15).
    stock: StockView = field(init=False, default_factory=StockView)
    # Guests' listing and detail answers, sent again as long as they are current.
    answers: Answers = field(init=False)
    catalog_version: CatalogVersion = field(init=False)
    # The process's one LISTEN connection (opened at start-up): long-polls and event
    # streams of orders (fanned out to the waiters of each order), and the stock view's,
    # the catalogue version's and the users' notifications' channels.
    order_changes: ChannelListener = field(init=False)
    order_watch: OrderWatch = field(init=False)
    # Each user's live notifications (GET /api/events/stream), woken on the same LISTEN
    # connection's ``shop_notification`` channel.
    notifications: NotificationFeed = field(init=False)
    # Each user's open live streams, counted in Redis across API processes.
    stream_slots: StreamSlots = field(init=False)
    # Tickets that open a live stream without a header (a browser's EventSource), in Redis.
    stream_tickets: StreamTickets = field(init=False)

    def __post_init__(self) -> None:
        self.read_sessions = create_read_session_factory(self.engine)
        self.temporal = TemporalConnection.from_settings(self.settings)
        self.workflows = WorkflowClients(self.temporal, self.sessions)
        ttl = self.settings.access_token_ttl_seconds
        self.access_tokens = AccessTokens(jwt_secret(self.settings), ttl)
        warn_unverifiable_webhooks(self.settings)
        self.revocations = Revocations(self.redis, ttl)
        self.analytics = AnalyticsRecorder(self.settings.analytics_enabled)
        self.ingest = EventBuffer.from_settings(self.sessions, self.settings)
        index = self.settings.search_index_path if self.settings.search_index else None
        self.search = SearchEngines(index)
        self.dashboards = DashboardCache(self.settings.analytics_dashboard_cache_entries)
        self.catalog_version = CatalogVersion(self.redis)
        self.answers = Answers(clock=self.catalog_entries.clock)
        self.order_changes = ChannelListener(asyncpg_dsn(self.settings), ORDER_CHANNEL)
        self.order_changes.subscribe(STOCK_CHANNEL, self.stock)
        self.order_changes.subscribe(CATALOG_CHANNEL, self.catalog_version)
        self.notifications = NotificationFeed(self.read_sessions)
        self.stream_slots = StreamSlots.from_settings(self.redis, self.settings)
        self.stream_tickets = StreamTickets.from_settings(self.redis, self.settings)
        self.order_changes.subscribe(NOTIFICATION_CHANNEL, self.notifications)
        self.order_watch = OrderWatch(
            self.sessions, self.read_sessions, self.settings, self.analytics, self.order_changes
        )

    # Built on first use: each costs ~40 ms (a TLS context), and most processes need
    # neither (staff refunds; the Stripe sandbox's webhooks).
    @cached_property
    def payments(self) -> PaymentGateway:
        return StripeGateway.from_settings(
            self.settings, tracing_for(self.settings, ProcessRole.API)
        )

    @cached_property
    def shipping(self) -> ShippingProvider:
        """The carrier (EasyPost or its sandbox): verifies the carrier's webhooks."""
        return build_shipping_provider(self.settings)

    @cached_property
    def http(self) -> httpx.AsyncClient:
        """One outgoing HTTP client per process (the sandboxes' webhooks)."""
        return httpx.AsyncClient(timeout=5)

    def start(self) -> None:
        """What runs for the life of the process, started on the running event loop."""
        self.ingest.start()
        self.order_changes.start()

    async def aclose(self) -> None:
        await self.ingest.aclose()  # the last events, before the engine goes
        await self.order_changes.aclose()
        await self.catalog_version.aclose()
        if "http" in self.__dict__:
            await self.http.aclose()
