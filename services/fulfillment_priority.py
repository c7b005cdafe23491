"""How soon the warehouse should pick an order: ``fulfillment.order_ready``'s ``priority``.

A score (higher = sooner) made of four parts, and a level named after it:

| part | points |
|---|---|
| shipping method | express +40, standard 0 |
| order value (minor units) | ≥ 50,000 +20; ≥ 10,000 +10 |
| the customer's lifetime value | ≥ 100,000 +20; ≥ 25,000 +10 |
| waited from confirmed to ready | +5 per full hour, at most +30 |

Level: ``urgent`` at 60 or more, ``high`` at 30 or more, else ``normal``. Amounts are in
the order's minor units (cents), whatever the currency. A plain function of plain
numbers, so that it can be table-tested and fed from whatever the caller has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class ShippingMethod(StrEnum):
    STANDARD = "standard"
    EXPRESS = "express"


class PriorityLevel(StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True)
class FulfillmentPriority:
    score: int
    level: PriorityLevel


EXPRESS_POINTS = 40
# (at least this much, points), highest first.
ORDER_VALUE_POINTS = ((50_000, 20), (10_000, 10))
LIFETIME_VALUE_POINTS = ((100_000, 20), (25_000, 10))
POINTS_PER_HOUR_WAITED = 5
MAX_WAIT_POINTS = 30
LEVELS = ((60, PriorityLevel.URGENT), (30, PriorityLevel.HIGH))


def calculate_priority(
    shipping_method: ShippingMethod, total: int, lifetime_value: int, waited: timedelta
) -> FulfillmentPriority:
    score = EXPRESS_POINTS if shipping_method is ShippingMethod.EXPRESS else 0
    score += _tier(total, ORDER_VALUE_POINTS)
    score += _tier(lifetime_value, LIFETIME_VALUE_POINTS)
    hours = max(int(waited.total_seconds() // 3600), 0)
    score += min(hours * POINTS_PER_HOUR_WAITED, MAX_WAIT_POINTS)
    level = next((lvl for floor, lvl in LEVELS if score >= floor), PriorityLevel.NORMAL)
    return FulfillmentPriority(score=score, level=level)


def _tier(amount: int, tiers: tuple[tuple[int, int], ...]) -> int:
    return next((points for floor, points in tiers if amount >= floor), 0)
