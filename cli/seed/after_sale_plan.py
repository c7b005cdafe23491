"""What happens to each seeded order after the sale, decided from the order alone (its id,
its date, its lines and the seed), so a re-run decides the same and skips what is done.

Of the orders that reached the warehouse:
- the last day's are left open (the warehouse has not got to them);
- ``PARTIAL_SHARE`` of those that can be split ship one parcel and keep the rest back
  (``partially_shipped``);
- ``STALLED_SHARE`` ship and stall in transit: the carrier goes quiet after its first
  scan. The ``delayed`` flag is the ``ShipmentWorkflow``'s SLA timer's to raise; it
  counts ``SHIPMENT_STALL_HOURS`` from the carrier's time of the latest scan, so a
  parcel quiet that long already is flagged as it is seeded (``ParcelPlan.late``);
- the rest are delivered, multi-line orders in two parcels ``TWO_PARCEL_SHARE`` of the
  time. A parcel whose carrier steps would fall after now is still on its way; a second
  parcel whose label would fall after now is not packed yet (the order is partially
  shipped, as a ``PARTIAL_SHARE`` one is).
About ``RETURN_SHARE`` of delivered orders are returned: returns need a delivery within
``RETURN_WINDOW_DAYS``, so they are drawn among the recently delivered ones, at the rate
that makes that share of all delivered ones (orders are spread over 90 days, busier
lately: ``IN_WINDOW`` of them were delivered 3 to 27 days ago).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from models.orders import OrderStatus
from models.returns import ReturnReason

OPEN_HOURS = 24
PARTIAL_SHARE = 0.05
STALLED_SHARE = 0.04
TWO_PARCEL_SHARE = 0.35
RETURN_SHARE = 0.05
IN_WINDOW = 0.32
# A return is asked for a few days after delivery, and well within the window.
RETURN_MARGIN_DAYS = 3
CARRIER_STEPS = ("in_transit", "out_for_delivery", "delivered")
REASONS = [
    (ReturnReason.NO_LONGER_NEEDED, 40),
    (ReturnReason.NOT_AS_DESCRIBED, 20),
    (ReturnReason.DAMAGED, 15),
    (ReturnReason.WRONG_ITEM, 15),
    (ReturnReason.OTHER, 10),
]


@dataclass(frozen=True)
class Shares:
    """The shares above (a test may ask for others)."""

    partial: float = PARTIAL_SHARE
    stalled: float = STALLED_SHARE
    two_parcels: float = TWO_PARCEL_SHARE
    # Of the orders delivered 3 to 27 days ago: RETURN_SHARE of all delivered ones.
    returned_in_window: float = RETURN_SHARE / IN_WINDOW


class Fate(StrEnum):
    OPEN = "open"
    DELIVERED = "delivered"
    PARTIAL = "partially_shipped"
    STALLED = "stalled"


@dataclass(frozen=True)
class ParcelPlan:
    lines: tuple[tuple[str, int], ...]
    label_at: datetime
    # The carrier's steps after the label, each at its time (none after now).
    steps: tuple[tuple[str, datetime], ...]

    @property
    def delivered_at(self) -> datetime | None:
        return next((at for status, at in self.steps if status == "delivered"), None)

    def late(self, now: datetime, stall_hours: float) -> bool:
        """Not delivered, and the carrier's last scan is ``stall_hours`` old at ``now``:
        the parcel's workflow flags it delayed as soon as it records that scan."""
        if not self.steps or self.delivered_at is not None:
            return False
        return self.steps[-1][1] + timedelta(hours=stall_hours) <= now


@dataclass(frozen=True)
class ReturnPlan:
    lines: tuple[tuple[str, int], ...]
    reason: ReturnReason
    damaged: bool  # one unit comes back damaged


@dataclass(frozen=True)
class AfterSalePlan:
    order_id: str
    fate: Fate
    parcels: tuple[ParcelPlan, ...] = ()
    returned: ReturnPlan | None = None
    every_unit_packed: bool = False

    @property
    def delivered(self) -> bool:
        """Every unit packed, every parcel delivered."""
        return (
            self.fate is Fate.DELIVERED
            and self.every_unit_packed
            and all(p.delivered_at for p in self.parcels)
        )

    @property
    def order_status(self) -> OrderStatus:
        """Where the order stands once its parcels have taken their steps: by what is
        packed, not by the fate alone (a delivered one whose second parcel is not
        packed yet is partially shipped)."""
        if not self.parcels:
            return OrderStatus.FULFILLMENT_QUEUED
        if self.delivered:
            return OrderStatus.DELIVERED
        if self.every_unit_packed:
            return OrderStatus.SHIPPED
        return OrderStatus.PARTIALLY_SHIPPED


def statuses(plans: Iterable[AfterSalePlan]) -> dict[str, int]:
    """How many orders stand at each status once their plans are carried out (what
    ``shop seed`` prints). By ``order_status``, not by fate: a plan to deliver whose first
    label would fall after now ships nothing, and its order stays ``fulfillment_queued``."""
    return dict(Counter(str(plan.order_status) for plan in plans))


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    # Whole seconds: a carrier's times (and the sandbox's) have no finer grain.
    return timedelta(seconds=round(rng.uniform(low, high) * 3600))


def _parcel(
    rng: random.Random,
    lines: tuple[tuple[str, int], ...],
    after: datetime,
    now: datetime,
    steps: int,
) -> ParcelPlan | None:
    """A label some hours after ``after``, then ``steps`` carrier steps; None if even the
    label would be in the future."""
    label_at = after.replace(microsecond=0) + _hours(rng, 3, 30)
    if label_at > now:
        return None
    gaps = [_hours(rng, 4, 18), _hours(rng, 18, 70), _hours(rng, 2, 9)]
    moves: list[tuple[str, datetime]] = []
    at = label_at
    for status, gap in zip(CARRIER_STEPS[:steps], gaps, strict=False):
        at += gap
        if at > now:
            break
        moves.append((status, at))
    return ParcelPlan(lines, label_at, tuple(moves))


def _split(
    rng: random.Random, lines: tuple[tuple[str, int], ...]
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]] | None:
    """Two non-empty parcels: by lines, or one line's units in two."""
    if len(lines) >= 2:
        cut = rng.randint(1, len(lines) - 1)
        return lines[:cut], lines[cut:]
    (line_id, quantity) = lines[0]
    if quantity >= 2:
        first = rng.randint(1, quantity - 1)
        return ((line_id, first),), ((line_id, quantity - first),)
    return None


def plan_order(
    seed: int,
    order_id: str,
    created_at: datetime,
    lines: tuple[tuple[str, int], ...],
    now: datetime,
    return_window_days: int,
    shares: Shares = Shares(),
) -> AfterSalePlan:
    rng = random.Random(f"{seed}:after-sale:{order_id}")
    draw, parcels_draw, return_draw = rng.random(), rng.random(), rng.random()
    if not lines or created_at > now - timedelta(hours=OPEN_HOURS):
        return AfterSalePlan(order_id, Fate.OPEN)
    split = _split(rng, lines)
    if draw < shares.partial:
        if split is not None:  # (an order of one unit ships whole)
            first = _parcel(rng, split[0], created_at, now, len(CARRIER_STEPS))
            return AfterSalePlan(order_id, Fate.PARTIAL, (first,) if first else ())
    elif draw < shares.partial + shares.stalled:
        parcel = _parcel(rng, lines, created_at, now, 1)
        if parcel is None:
            return AfterSalePlan(order_id, Fate.STALLED)
        return AfterSalePlan(order_id, Fate.STALLED, (parcel,), every_unit_packed=True)
    groups = (
        split
        if split is not None and len(lines) >= 2 and parcels_draw < shares.two_parcels
        else None
    )
    parcels: list[ParcelPlan] = []
    after = created_at
    for group in groups or (lines,):
        parcel = _parcel(rng, group, after, now, len(CARRIER_STEPS))
        if parcel is None:
            break
        parcels.append(parcel)
        after = parcel.label_at
    packed = len(parcels) == len(groups or (lines,))
    plan = AfterSalePlan(order_id, Fate.DELIVERED, tuple(parcels), every_unit_packed=packed)
    returning = return_draw < shares.returned_in_window
    return _with_return(rng, plan, returning, now, return_window_days)


def _with_return(
    rng: random.Random, plan: AfterSalePlan, returning: bool, now: datetime, window_days: int
) -> AfterSalePlan:
    if not returning or not plan.parcels or not plan.delivered:
        return plan
    last = max(p.delivered_at for p in plan.parcels if p.delivered_at is not None)
    if not (
        now - timedelta(days=window_days - RETURN_MARGIN_DAYS)
        <= last
        <= now - timedelta(days=RETURN_MARGIN_DAYS)
    ):
        return plan
    delivered = [line for p in plan.parcels for line in p.lines]
    line_id, quantity = rng.choice(delivered)
    reason = rng.choices([r for r, _ in REASONS], weights=[w for _, w in REASONS])[0]
    returned = ReturnPlan(
        ((line_id, rng.randint(1, quantity)),), reason, reason is ReturnReason.DAMAGED
    )
    return AfterSalePlan(plan.order_id, plan.fate, plan.parcels, returned, plan.every_unit_packed)
