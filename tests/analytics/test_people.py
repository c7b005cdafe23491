"""People sets read back from rollup bitmaps: unions, and the decoded-bitmap memo."""

from __future__ import annotations

from datetime import UTC, datetime

from services.analytics import bitmaps
from services.analytics.people import PeopleRow, decoded, edge_unions, union

HOUR = datetime(2025, 6, 1, 5, tzinfo=UTC)


def test_unions_decode_each_distinct_bitmap_once_and_stay_exact() -> None:
    decoded.cache_clear()
    first, second = bitmaps.encode([1, 5, 9]), bitmaps.encode([5, 200_000])
    rows = [
        PeopleRow("hour", HOUR, "*", 3, 3, first),
        PeopleRow("hour", HOUR.replace(hour=6), "*", 2, 2, second),
        PeopleRow("day", HOUR.replace(hour=0), "*", 3, 3, first),
        PeopleRow("hour", HOUR, "add_to_cart", 1, 1, bitmaps.encode([7])),
    ]
    assert union(rows, "*") == sum(1 << n for n in (1, 5, 9, 200_000))
    assert union(rows, "*").bit_count() == 4
    assert union(rows, "order_complete") == 0
    assert edge_unions(rows, "*") == {HOUR.replace(hour=0): union(rows[:2], "*")}
    info = decoded.cache_info()
    assert info.misses == 2  # first and second; "add_to_cart" was never asked for
    assert info.hits >= 4
    # Other bytes (a recomputed hour) are other members: never a stale answer.
    assert union([PeopleRow("hour", HOUR, "*", 1, 1, bitmaps.encode([9]))], "*") == 1 << 9
