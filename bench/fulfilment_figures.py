"""What ``shop bench fulfilment`` measures and prints: each parcel's server times
(``ParcelSample``), parcels booked and delivered per second (``Throughput``), and a run's
figures against the carrier alone (``FulfilmentResult.lines``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bench.checkout import percentile


@dataclass
class ParcelSample:
    """One parcel of the timed part (server times; None where it did not get there)."""

    created_at: datetime
    labelled_at: datetime | None = None
    delivered_at: datetime | None = None
    status: str = "pending"

    @property
    def to_label(self) -> float | None:
        if self.labelled_at is None:
            return None
        return (self.labelled_at - self.created_at).total_seconds()

    @property
    def to_delivered(self) -> float | None:
        if self.delivered_at is None:
            return None
        return (self.delivered_at - self.created_at).total_seconds()


@dataclass
class Throughput:
    """Parcels booked and delivered per second over one timed part."""

    label: str
    parcels: int
    booked: int
    delivered: int
    booked_seconds: float
    delivered_seconds: float

    @property
    def booked_per_second(self) -> float:
        return self.booked / self.booked_seconds if self.booked_seconds > 0 else 0.0

    @property
    def delivered_per_second(self) -> float:
        return self.delivered / self.delivered_seconds if self.delivered_seconds > 0 else 0.0


@dataclass
class FulfilmentResult:
    parcels: int
    concurrency: int
    setup_seconds: float
    started_at: datetime
    samples: list[ParcelSample] = field(repr=False)
    ceiling: Throughput | None = None

    def throughput(self) -> Throughput:
        labelled = [s.labelled_at for s in self.samples if s.labelled_at is not None]
        delivered = [s.delivered_at for s in self.samples if s.delivered_at is not None]

        def span(ends: list[datetime]) -> float:
            return (max(ends) - self.started_at).total_seconds() if ends else 0.0

        return Throughput(
            "stack", self.parcels, len(labelled), len(delivered), span(labelled), span(delivered)
        )

    def lines(self) -> list[str]:
        ours = self.throughput()

        def row(label: str, values: list[float]) -> str:
            return (
                f"  {label:<26} p50 {percentile(values, 50) * 1000:8.1f} ms   "
                f"p95 {percentile(values, 95) * 1000:8.1f} ms"
            )

        lines = [
            f"fulfilment: {self.parcels} parcels, {self.concurrency} in flight "
            f"(setup {self.setup_seconds:.1f} s, untimed)",
            f"  booked    {ours.booked}: {ours.booked_per_second:.1f} shipments/s "
            f"over {ours.booked_seconds:.1f} s",
            f"  delivered {ours.delivered}: {ours.delivered_per_second:.1f} shipments/s "
            f"over {ours.delivered_seconds:.1f} s",
            row("create → label", [s.to_label for s in self.samples if s.to_label is not None]),
            row(
                "create → order delivered",
                [s.to_delivered for s in self.samples if s.to_delivered is not None],
            ),
        ]
        stuck = [s.status for s in self.samples if s.delivered_at is None]
        if stuck:
            lines.append(f"  not delivered in time: {len(stuck)} ({', '.join(sorted(set(stuck)))})")
        if self.ceiling is not None:
            c = self.ceiling
            lines += [
                f"ceiling, the sandbox carrier alone (adapter create + buy, 3 advances), "
                f"{c.parcels} parcels: booked {c.booked_per_second:.1f}/s, "
                f"delivered {c.delivered_per_second:.1f}/s",
                f"  stack / ceiling: booked {ratio(ours.booked_per_second, c.booked_per_second)}"
                f", delivered {ratio(ours.delivered_per_second, c.delivered_per_second)}",
            ]
        return lines


def ratio(ours: float, ceiling: float) -> str:
    return f"{ours / ceiling:.0%}" if ceiling > 0 else "-"
