"""``shop bench fulfilment``: the figures it prints from its samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.fulfilment_figures import FulfilmentResult, ParcelSample, Throughput, ratio


def test_throughput_latencies_and_the_ceiling_ratio() -> None:
    start = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    samples = [
        ParcelSample(at(0), at(0.5), at(2.0), "order delivered"),
        ParcelSample(at(1), at(2.0), at(4.0), "order delivered"),
        ParcelSample(at(2), at(2.5), None, "order shipped"),
        ParcelSample(at(3), None, None, "pending"),
    ]
    assert [s.to_label for s in samples] == [0.5, 1.0, 0.5, None]
    assert [s.to_delivered for s in samples] == [2.0, 3.0, None, None]
    result = FulfilmentResult(4, 2, 3.0, start, samples)
    ours = result.throughput()
    assert (ours.booked, ours.delivered) == (3, 2)
    assert ours.booked_seconds == 2.5  # the first create to the last label
    assert ours.delivered_seconds == 4.0
    assert ours.booked_per_second == pytest.approx(1.2)
    assert ours.delivered_per_second == pytest.approx(0.5)

    result.ceiling = Throughput("carrier", 4, 4, 4, 1.0, 2.0)
    text = "\n".join(result.lines())
    assert "booked    3: 1.2 shipments/s" in text
    assert "delivered 2: 0.5 shipments/s" in text
    assert "not delivered in time: 2 (order shipped, pending)" in text
    assert "stack / ceiling: booked 30%, delivered 25%" in text


def test_nothing_done_is_reported_as_nothing() -> None:
    start = datetime(2026, 12, 3, tzinfo=UTC)
    empty = FulfilmentResult(1, 1, 0.0, start, [ParcelSample(start)])
    ours = empty.throughput()
    assert (ours.booked_per_second, ours.delivered_per_second) == (0.0, 0.0)
    assert ratio(1.0, 0.0) == "-"
    assert "not delivered in time: 1 (pending)" in "\n".join(empty.lines())
