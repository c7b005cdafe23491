"""One person's way through a funnel, walked in Python over their events in time order.

The default funnel (``ordered`` without step windows) and ``any`` run as SQL in
``FunnelRepository``; ``strict`` (which looks at every event of the person) and
``ordered`` with step windows (which needs every previous-step event, not only the
first) are walked here. Both give the same answer where both apply (tested).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

# Times are seconds since the epoch (floats): the walk runs over hundreds of thousands of
# events, and arithmetic on floats is several times faster than on datetimes.
Seconds = float


class FunnelOrder(StrEnum):
    ORDERED = "ordered"  # steps in order, other events between them allowed
    STRICT = "strict"  # steps in order, no other event of the person between two steps
    ANY = "any"  # the steps after the first in any order


@dataclass(frozen=True)
class WalkRules:
    steps: tuple[str, ...]
    order: FunnelOrder
    window: timedelta
    # One per step after the first (index 0 is the second step), or None.
    step_windows: tuple[timedelta, ...] | None


@dataclass(frozen=True)
class PersonPath:
    """How far one person got: ``reached`` steps (at least 1, the entry), the seconds
    from the previous step of each step after the first, and whether they can still
    reach the next step (its deadline is after now)."""

    reached: int
    gaps: tuple[float, ...]
    next_open: bool


def _step_window(rules: WalkRules, step: int) -> Seconds | None:
    return rules.step_windows[step - 1].total_seconds() if rules.step_windows else None


def _deadline(rules: WalkRules, entry: Seconds, step: int, last_previous: Seconds) -> Seconds:
    """When the chance to reach ``step`` ends: the funnel window from entry, and the
    step's own window from the latest previous-step event of the person's way."""
    end = entry + rules.window.total_seconds()
    window = _step_window(rules, step)
    return min(end, last_previous + window) if window is not None else end


def walk(
    rules: WalkRules,
    entry: Seconds,
    events: Sequence[tuple[int | None, Seconds]],
    now: Seconds,
) -> PersonPath:
    """``events``: the person's events from ``entry`` on, oldest first, as (the index of
    their step, or None for another event, time): the steps' events only, or every event
    for ``strict``."""
    end = entry + rules.window.total_seconds()
    inside = [(step, at) for step, at in events if entry <= at <= end]
    if rules.order is FunnelOrder.ANY:
        return _walk_any(rules, entry, inside, now)
    if rules.order is FunnelOrder.STRICT:
        return _walk_strict(rules, entry, inside, now)
    return _walk_ordered(rules, entry, inside, now)


def _path(
    rules: WalkRules,
    entry: Seconds,
    firsts: list[Seconds | None],
    gaps: list[float],
    last_of: list[Seconds | None],
    now: Seconds,
) -> PersonPath:
    reached = next((i for i, at in enumerate(firsts) if at is None), len(firsts))
    open_ = False
    if reached < len(rules.steps):
        previous = last_of[reached - 1]
        assert previous is not None
        open_ = _deadline(rules, entry, reached, previous) > now
    return PersonPath(reached, tuple(gaps[: reached - 1]), open_)


def _walk_ordered(
    rules: WalkRules, entry: Seconds, events: list[tuple[int | None, Seconds]], now: Seconds
) -> PersonPath:
    n = len(rules.steps)
    # Every event of each step that continues a valid way from the entry, oldest first.
    ways: list[list[Seconds]] = [[entry]] + [[] for _ in range(n - 1)]
    firsts: list[Seconds | None] = [entry] + [None] * (n - 1)
    gaps: list[float] = [0.0] * (n - 1)
    for step, at in events:
        if step is None:
            continue
        if step == 0:
            ways[0].append(at)
            continue
        previous = ways[step - 1]
        window = _step_window(rules, step)
        # The earliest previous-step event this one may follow.
        i = bisect_left(previous, at - window) if window is not None else 0
        if i < len(previous) and previous[i] <= at:
            ways[step].append(at)
            if firsts[step] is None:
                firsts[step] = at
                gaps[step - 1] = at - previous[i]
    last_of: list[Seconds | None] = [way[-1] if way else None for way in ways]
    return _path(rules, entry, firsts, gaps, last_of, now)


def _walk_strict(
    rules: WalkRules, entry: Seconds, events: list[tuple[int | None, Seconds]], now: Seconds
) -> PersonPath:
    n = len(rules.steps)
    firsts: list[Seconds | None] = [entry] + [None] * (n - 1)
    last_of: list[Seconds | None] = [entry] + [None] * (n - 1)
    gaps: list[float] = [0.0] * (n - 1)
    length, last = 0, entry  # the way being walked: its steps and its latest event
    for step, at in events:
        window = _step_window(rules, step) if step else None
        if 0 < length == step and (window is None or at - last <= window):
            length += 1
            last_of[step] = at
            if firsts[step] is None:
                firsts[step] = at
                gaps[step - 1] = at - last
            last = at
        elif step == 0:
            length, last = 1, at
            last_of[0] = at
        else:
            length = 0  # another event: the way is broken
    return _path(rules, entry, firsts, gaps, last_of, now)


def _walk_any(
    rules: WalkRules, entry: Seconds, events: list[tuple[int | None, Seconds]], now: Seconds
) -> PersonPath:
    n = len(rules.steps)
    first_seen: dict[int, Seconds] = {}
    for step, at in events:
        if step is not None and step > 0:
            first_seen.setdefault(step, at)
    firsts: list[Seconds | None] = [entry] + [None] * (n - 1)
    gaps: list[float] = [0.0] * (n - 1)
    at = entry
    for step in range(1, n):
        seen = first_seen.get(step)
        if seen is None:
            break
        reach = max(at, seen)
        window = _step_window(rules, step)
        if window is not None and reach - at > window:
            break
        firsts[step], gaps[step - 1], at = reach, reach - at, reach
    return _path(rules, entry, firsts, gaps, list(firsts), now)
