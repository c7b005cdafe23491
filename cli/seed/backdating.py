"""Seeded orders moved into the past, with the browsing that led to them and browsing that
led to nothing, so that the dashboard and the funnel look like a shop's last months."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cli.seed.part import SeedPart
from core.db import transaction
from services.analytics import AnalyticsRecorder
from services.seeding import Backdating, SeededProduct

# Relative weight of each hour of the day (UTC) for order and browsing times.
HOURLY = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 9, 10, 9, 8, 8, 9, 10, 12, 13, 12, 9, 5, 2]
CHUNK = 250  # orders moved per transaction


@dataclass(frozen=True)
class PlannedOrder:
    user_id: str
    lines: list[tuple[SeededProduct, int]]
    token: str
    noise: int  # seeds this order's browsing funnel


@dataclass
class PlacedOrder:
    plan: PlannedOrder
    order_id: str
    add_event_ids: list[str]
    status: str = ""
    failure_code: str | None = None


def past_times(rng: random.Random, count: int, days: int, now: datetime) -> list[datetime]:
    """``count`` moments in the last ``days`` days, ascending: busier in the evening and
    somewhat busier lately, as a growing shop is."""
    times = []
    for _ in range(count):
        day = now - timedelta(days=int(days * rng.random() ** 1.3))
        at = day.replace(
            hour=rng.choices(range(24), weights=HOURLY)[0],
            minute=rng.randrange(60),
            second=rng.randrange(60),
            microsecond=rng.randrange(1_000_000),
        )
        times.append(at - timedelta(days=1) if at > now - timedelta(minutes=10) else at)
    return sorted(times)


def _view(product: SeededProduct) -> dict[str, Any]:
    return {"productId": product.id, "categoryId": product.category_id, "price": product.price}


def _add(product: SeededProduct, quantity: int) -> dict[str, Any]:
    return {"productId": product.id, "quantity": quantity, "price": product.price}


class Backdater(SeedPart):
    async def payments_quiet(self, order_ids: Sequence[str]) -> None:
        """The sandbox sends its webhooks just after each call; let the last ones land
        before the payment history is moved into the past."""
        last = -1
        analytics = AnalyticsRecorder(False)
        for _ in range(40):
            async with transaction(self.sessions) as session:
                count = await Backdating(session, analytics).payment_events(order_ids)
            if count == last:
                return
            last = count
            await asyncio.sleep(0.5)

    async def backdate(
        self,
        placed: list[PlacedOrder],
        times: list[datetime],
        browsing: random.Random,
        user_ids: list[str],
        pool: list[SeededProduct],
        days: int,
    ) -> None:
        """Order ids sort by when they were placed; the dates are handed out in the same
        order, so sorting by id and by ``createdAt`` agree."""
        placed = sorted(placed, key=lambda p: p.order_id)
        analytics = AnalyticsRecorder(self.settings.analytics_enabled)
        for start in range(0, len(placed), CHUNK):
            chunk = list(
                zip(placed[start : start + CHUNK], times[start : start + CHUNK], strict=True)
            )
            async with transaction(self.sessions) as session:
                backdating = Backdating(session, analytics)
                await backdating.move_orders([(order.order_id, at) for order, at in chunk])
                adds: list[tuple[str, datetime]] = []
                for order, at in chunk:
                    adds += await self._funnel(backdating, order, at, pool)
                await backdating.set_event_times(adds)
        if analytics.enabled:
            async with transaction(self.sessions) as session:
                await self._browsing(
                    Backdating(session, analytics), browsing, len(placed), user_ids, pool, days
                )

    @staticmethod
    async def _browsing(
        backdating: Backdating,
        browsing: random.Random,
        orders: int,
        user_ids: list[str],
        pool: list[SeededProduct],
        days: int,
    ) -> None:
        """Browsing that ends in no order: anonymous or signed in, some with an add."""
        for at in past_times(browsing, orders * 3 // 2, days, datetime.now(UTC)):
            who = browsing.choice(user_ids) if browsing.random() < 0.6 else None
            viewed = browsing.sample(pool, min(len(pool), browsing.randint(1, 5)))
            for product in viewed:
                await backdating.track_at(at, "product_view", who, _view(product))
                at += timedelta(seconds=browsing.uniform(20, 240))
            if who is not None and browsing.random() < 0.3:
                product = browsing.choice(viewed)
                await backdating.track_at(at, "add_to_cart", who, _add(product, 1))

    @staticmethod
    async def _funnel(
        backdating: Backdating, order: PlacedOrder, at: datetime, pool: list[SeededProduct]
    ) -> list[tuple[str, datetime]]:
        """Dates for the order's own adds to cart, and the product views before them
        (several per bought product, and a few of others): the minutes before ``at``."""
        if not backdating.analytics.enabled:
            return []
        r = random.Random(order.plan.noise)
        user = order.plan.user_id
        adds: list[tuple[str, datetime]] = []
        cursor = at - timedelta(seconds=r.uniform(40, 300))
        pairs = list(zip(order.plan.lines, order.add_event_ids, strict=False))
        for (product, _), event_id in reversed(pairs):
            adds.append((event_id, cursor))
            for _ in range(r.choice([1, 1, 2, 2, 3, 4])):
                cursor -= timedelta(seconds=r.uniform(15, 400))
                await backdating.track_at(cursor, "product_view", user, _view(product))
            cursor -= timedelta(seconds=r.uniform(30, 600))
        for product in r.sample(pool, min(len(pool), r.randint(0, 3))):
            cursor -= timedelta(seconds=r.uniform(15, 300))
            await backdating.track_at(cursor, "product_view", user, _view(product))
        return adds
