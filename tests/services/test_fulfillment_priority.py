"""``calculate_priority``: the rules in its docstring (and the README), row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.fulfillment_priority import (
    FulfillmentPriority,
    PriorityLevel,
    ShippingMethod,
    calculate_priority,
)

STANDARD, EXPRESS = ShippingMethod.STANDARD, ShippingMethod.EXPRESS
NORMAL, HIGH, URGENT = PriorityLevel.NORMAL, PriorityLevel.HIGH, PriorityLevel.URGENT
NOW = timedelta(0)


@pytest.mark.parametrize(
    ("method", "total", "lifetime_value", "waited", "score", "level"),
    [
        # Nothing special: a small standard order by a new customer, just confirmed.
        (STANDARD, 2_500, 0, NOW, 0, NORMAL),
        # Express alone.
        (EXPRESS, 2_500, 0, NOW, 40, HIGH),
        # Order value tiers, at and just under each floor.
        (STANDARD, 9_999, 0, NOW, 0, NORMAL),
        (STANDARD, 10_000, 0, NOW, 10, NORMAL),
        (STANDARD, 49_999, 0, NOW, 10, NORMAL),
        (STANDARD, 50_000, 0, NOW, 20, NORMAL),
        # Lifetime value tiers.
        (STANDARD, 2_500, 24_999, NOW, 0, NORMAL),
        (STANDARD, 2_500, 25_000, NOW, 10, NORMAL),
        (STANDARD, 2_500, 100_000, NOW, 20, NORMAL),
        # Waiting: 5 per full hour, capped at 30.
        (STANDARD, 2_500, 0, timedelta(minutes=59), 0, NORMAL),
        (STANDARD, 2_500, 0, timedelta(hours=1), 5, NORMAL),
        (STANDARD, 2_500, 0, timedelta(hours=5, minutes=59), 25, NORMAL),
        (STANDARD, 2_500, 0, timedelta(hours=6), 30, HIGH),
        (STANDARD, 2_500, 0, timedelta(days=3), 30, HIGH),
        # A clock a little behind never makes a negative wait.
        (STANDARD, 2_500, 0, timedelta(seconds=-5), 0, NORMAL),
        # Parts add up; the level follows the score.
        (STANDARD, 50_000, 25_000, NOW, 30, HIGH),
        (STANDARD, 50_000, 100_000, timedelta(hours=3), 55, HIGH),
        (EXPRESS, 10_000, 25_000, NOW, 60, URGENT),
        (EXPRESS, 50_000, 100_000, timedelta(hours=9), 110, URGENT),
    ],
)
def test_priority_rules(
    method: ShippingMethod,
    total: int,
    lifetime_value: int,
    waited: timedelta,
    score: int,
    level: PriorityLevel,
) -> None:
    assert calculate_priority(method, total, lifetime_value, waited) == FulfillmentPriority(
        score, level
    )


def test_a_bigger_anything_never_lowers_the_priority() -> None:
    base = calculate_priority(STANDARD, 10_000, 25_000, timedelta(hours=1)).score
    assert calculate_priority(EXPRESS, 10_000, 25_000, timedelta(hours=1)).score > base
    assert calculate_priority(STANDARD, 60_000, 25_000, timedelta(hours=1)).score > base
    assert calculate_priority(STANDARD, 10_000, 200_000, timedelta(hours=1)).score > base
    assert calculate_priority(STANDARD, 10_000, 25_000, timedelta(hours=2)).score > base
