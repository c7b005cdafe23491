"""The conversion funnel: who entered (their first step-1 event in the range), how far
they got within the window, who is still inside it, and how long each step took.

People are ``person_id``s: the user, or the anonymous id before sign-in (sign-in links
the two, so a guest who signs in half-way counts once). Definitions: README, "Funnel".
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ValidationFailed
from models.analytics import EVENT_NAME, FUNNEL_STEPS, SEED_EVENTS
from models.analytics_funnel import (
    AnalyticsRange,
    FunnelBreakdown,
    FunnelGroup,
    FunnelReport,
    FunnelStep,
)
from services.analytics.funnel_repository import FunnelRepository, StepFigures
from services.analytics.funnel_statements import Breakdown
from services.analytics.funnel_walk import FunnelOrder, PersonPath, WalkRules, walk
from services.analytics.ranges import InvalidTimeRange, TimeRange, resolve_range

DURATION = re.compile(r"^([1-9][0-9]{0,5})(m|h|d)$")
DURATION_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
DEFAULT_WINDOW = "14d"
MAX_WINDOW = timedelta(days=90)
MAX_STEPS = 10


def _invalid(code: str, field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code=code, field=field)


def ensure_horizon(time_range: TimeRange, beyond: timedelta) -> TimeRange:
    """Reading goes ``beyond`` the range's end (the window, the retention periods): a ``to``
    so late that it cannot is refused, not a 500."""
    try:
        time_range.end + beyond
    except OverflowError:
        raise InvalidTimeRange("to", "too far in the future") from None
    return time_range


def parse_steps(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return FUNNEL_STEPS
    steps = tuple(part.strip() for part in raw.split(","))
    for step in steps:
        if step not in SEED_EVENTS and not EVENT_NAME.match(step):
            raise _invalid(
                "invalid_funnel_step",
                "steps",
                f"{step!r} is not an event name (the seed's events, or ^[a-z][a-z0-9_]{{1,63}}$)",
            )
    if not 2 <= len(steps) <= MAX_STEPS:
        raise _invalid("invalid_funnel_step", "steps", f"give 2 to {MAX_STEPS} steps")
    if len(set(steps)) != len(steps):
        raise _invalid("invalid_funnel_step", "steps", "each step may appear once")
    return steps


def parse_duration(raw: str, field: str) -> timedelta:
    match = DURATION.match(raw.strip())
    if not match:
        raise _invalid("invalid_window", field, f"{raw!r} is not a duration like 30m, 2h or 14d")
    duration = int(match.group(1)) * DURATION_UNITS[match.group(2)]
    if duration > MAX_WINDOW:
        raise _invalid("invalid_window", field, f"{raw!r} is longer than 90d")
    return duration


def parse_order(raw: str | None) -> FunnelOrder:
    try:
        return FunnelOrder(raw or FunnelOrder.ORDERED)
    except ValueError:
        accepted = ", ".join(order.value for order in FunnelOrder)
        raise _invalid("invalid_order", "order", f"{raw!r}; accepted: {accepted}") from None


def parse_breakdown(raw: str | None) -> Breakdown | None:
    if raw is None:
        return None
    try:
        return Breakdown(raw)
    except ValueError:
        accepted = ", ".join(by.value for by in Breakdown)
        raise _invalid("invalid_breakdown", "breakdown", f"{raw!r}; accepted: {accepted}") from None


@dataclass(frozen=True)
class FunnelQuery:
    steps: tuple[str, ...]
    range: TimeRange
    window: str
    order: FunnelOrder
    step_windows: tuple[str, ...] | None
    breakdown: Breakdown | None

    @classmethod
    def parse(
        cls,
        *,
        now: datetime,
        time_range: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        steps: str | None = None,
        window: str | None = None,
        order: str | None = None,
        step_windows: str | None = None,
        breakdown: str | None = None,
    ) -> FunnelQuery:
        """The query string's values, checked: a 422 naming the field otherwise."""
        parsed_steps = parse_steps(steps)
        label = (window or DEFAULT_WINDOW).strip()
        parse_duration(label, "window")
        labels: tuple[str, ...] | None = None
        if step_windows is not None:
            labels = tuple(part.strip() for part in step_windows.split(","))
            if len(labels) != len(parsed_steps) - 1:
                raise _invalid(
                    "invalid_window", "stepWindows", "give one window per step after the first"
                )
            for each in labels:
                parse_duration(each, "stepWindows")
        return cls(
            parsed_steps,
            ensure_horizon(resolve_range(time_range, start, end, now), MAX_WINDOW),
            label,
            parse_order(order),
            labels,
            parse_breakdown(breakdown),
        )

    @property
    def rules(self) -> WalkRules:
        windows = self.step_windows
        return WalkRules(
            self.steps,
            self.order,
            parse_duration(self.window, "window"),
            tuple(parse_duration(w, "stepWindows") for w in windows) if windows else None,
        )


def _figures(paths: Sequence[PersonPath], n: int) -> StepFigures:
    counts = [sum(1 for p in paths if p.reached > k) for k in range(n)]
    in_window = [0] + [sum(1 for p in paths if p.reached == k and p.next_open) for k in range(1, n)]
    medians: list[float | None] = [None]
    for k in range(1, n):
        gaps = [p.gaps[k - 1] for p in paths if p.reached > k]
        medians.append(statistics.median(gaps) if gaps else None)
    return StepFigures(counts, in_window, medians)


def _fraction(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _steps(steps: Sequence[str], figures: StepFigures) -> list[FunnelStep]:
    out: list[FunnelStep] = []
    start = figures.counts[0] if figures.counts else 0
    for k, step in enumerate(steps):
        count = figures.counts[k]
        previous = figures.counts[k - 1] if k else count
        median = figures.medians[k]
        out.append(
            FunnelStep(
                step=step,
                count=count,
                conversion_from_previous=_fraction(count, previous),
                conversion_from_start=_fraction(count, start),
                in_window=figures.in_window[k],
                dropped=previous - count - figures.in_window[k],
                median_seconds_from_previous=None if median is None else round(float(median), 1),
            )
        )
    return out


class FunnelService:
    def __init__(self, session: AsyncSession, parallelism: int = 1) -> None:
        self.repo = FunnelRepository(session, parallelism)

    async def funnel(self, query: FunnelQuery, now: datetime) -> FunnelReport:
        n = len(query.steps)
        found = await self.repo.figures(query.rules, query.breakdown, query.range, now)
        empty = StepFigures([0] * n, [0] * n, [None] * n)
        groups = [
            FunnelGroup(value=value, steps=_steps(query.steps, figures))
            for value, figures in sorted(
                ((v, f) for v, f in found.items() if v is not None),
                key=lambda item: (-item[1].counts[0], item[0]),
            )
        ]
        return FunnelReport(
            steps=_steps(query.steps, found.get(None, empty)),
            order=query.order.value,
            window=query.window,
            step_windows=list(query.step_windows) if query.step_windows else None,
            range=range_public(query.range),
            breakdown=FunnelBreakdown(by=query.breakdown.value, groups=groups)
            if query.breakdown
            else None,
            timestamp=now,
        )

    async def walked(self, query: FunnelQuery, now: datetime) -> dict[str | None, StepFigures]:
        """The same figures as ``FunnelRepository.figures``, walked person by person in
        Python (``funnel_walk``): the reference the SQL is tested against."""
        rules, n = query.rules, len(query.steps)
        by_group: dict[str | None, list[PersonPath]] = {None: []}
        for group, entry, events in await self.repo.paths(rules, query.breakdown, query.range):
            path = walk(rules, entry, events, now.timestamp())
            by_group[None].append(path)
            if query.breakdown:
                by_group.setdefault(group, []).append(path)
        return {value: _figures(paths, n) for value, paths in by_group.items()}


def range_public(time_range: TimeRange) -> AnalyticsRange:
    values: dict[str, Any] = {
        "time_range": time_range.label,
        "from": time_range.start,
        "to": time_range.end,
        "granularity": time_range.granularity,
    }
    return AnalyticsRange.model_validate(values)
