"""The gauges of ``/metrics`` read from the database at scrape time: the event relay's,
and how many products are below their low-stock threshold (the low-stock alert of
``deploy/prometheus/alerts.yml``).

A database that fails or is slow must not take ``/metrics`` down with it: the gauges are
then left out, ``shop_event_relay_metrics_ok`` is 0 and the error is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from services.events.relay_health import RelayHealth, relay_health
from services.inventory.stock import StockService

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_SECONDS = 2.0


async def relay_exposition(sessions: SessionFactory, *, live_within: timedelta) -> bytes:
    """``live_within``: a subscriber no relay has said it knows for this long has no live
    worker (three relay polls)."""
    health: RelayHealth | None
    low_stock = 0
    try:
        async with sessions() as session:
            health, low_stock = await asyncio.wait_for(
                _read(session, live_within), SCRAPE_TIMEOUT_SECONDS
            )
    except Exception:
        log.warning("relay metrics: the database did not answer", exc_info=True)
        health = None
    registry = CollectorRegistry()
    registry.register(_RelayGauges(health, low_stock))
    return generate_latest(registry)


async def _read(session: AsyncSession, live_within: timedelta) -> tuple[RelayHealth, int]:
    health = await relay_health(session, live_within=live_within)
    return health, await StockService(session).low_count()


class _RelayGauges(Collector):
    def __init__(self, health: RelayHealth | None, low_stock: int) -> None:
        self.health = health
        self.low_stock = low_stock

    def collect(self) -> list[GaugeMetricFamily]:
        ok = GaugeMetricFamily(
            "shop_event_relay_metrics_ok",
            "1 if the relay and low-stock gauges below were read from the database at this scrape",
            value=0 if self.health is None else 1,
        )
        if self.health is None:
            return [ok]
        return [
            ok,
            _per_subscriber(
                "shop_event_relay_lag_seconds",
                "Age of the oldest pending delivery per subscriber; subscriber=_dispatch: of "
                "the oldest outbox row not yet fanned out (0 when none)",
                self.health.lag_seconds,
            ),
            _per_subscriber(
                "shop_event_deliveries_pending",
                "Deliveries waiting or under way, per subscriber",
                self.health.pending,
            ),
            _per_subscriber(
                "shop_event_dead_letters",
                "Failed deliveries (dead letters) now, per subscriber",
                self.health.dead_letters,
            ),
            _per_subscriber(
                "shop_event_deliveries_unknown",
                "Pending deliveries no live worker knows the subscriber (and event type) of: "
                "waiting for one, dropped after EVENT_SUBSCRIBER_GRACE_SECONDS; per subscriber",
                self.health.unknown,
            ),
            GaugeMetricFamily(
                "shop_low_stock_products",
                "Products (not deleted) whose available stock is below their low-stock "
                "threshold now: GET /api/inventory/low-stock's total",
                value=self.low_stock,
            ),
        ]


def _per_subscriber(
    name: str, documentation: str, values: Mapping[str, float]
) -> GaugeMetricFamily:
    """A gauge with one sample per subscriber."""
    gauge = GaugeMetricFamily(name, documentation, labels=["subscriber"])
    for subscriber, value in values.items():
        gauge.add_metric([subscriber], value)
    return gauge
