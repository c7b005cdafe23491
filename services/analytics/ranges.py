"""The time range every analytics reading answers for: ``timeRange`` (24h, 7d, 30d, 90d,
12m) or ``from``/``to``, its granularity, and the previous period of the same length."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from core.errors import ValidationFailed

Granularity = Literal["hour", "day"]

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "12m": timedelta(days=365),
}
DEFAULT_RANGE = "7d"
MAX_CUSTOM = timedelta(days=400)
# Far enough from datetime's limits for the previous period to exist.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
# Series are hourly up to a week, daily beyond.
HOURLY_UP_TO = timedelta(days=7)


class InvalidTimeRange(ValidationFailed):
    code = "invalid_time_range"
    title = "The time range is not valid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.field = field


@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` in UTC; ``label`` is the preset's name, or ``custom``."""

    label: str
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def granularity(self) -> Granularity:
        return "hour" if self.length <= HOURLY_UP_TO else "day"

    def previous(self) -> TimeRange:
        """The period of the same length right before this one."""
        return TimeRange(self.label, self.start - self.length, self.start)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hour_floor(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def resolve_range(
    time_range: str | None, start: datetime | None, end: datetime | None, now: datetime
) -> TimeRange:
    """A preset ends at the end of the current hour (so the series' last point is the hour
    in progress); ``from``/``to`` are taken as given (naive means UTC), ``to`` exclusive."""
    if start is not None or end is not None:
        if time_range is not None:
            raise InvalidTimeRange("timeRange", "give either timeRange or from/to, not both")
        if start is None or end is None:
            missing = "from" if start is None else "to"
            raise InvalidTimeRange(missing, "from and to are required together")
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise InvalidTimeRange("to", "to must be after from")
        if start < EARLIEST or end > LATEST:
            raise InvalidTimeRange("from", "from and to must fall between 1970 and 9000")
        if end - start > MAX_CUSTOM:
            raise InvalidTimeRange("to", f"to must be at most {MAX_CUSTOM.days} days after from")
        return TimeRange("custom", start, end)
    label = DEFAULT_RANGE if time_range is None else time_range
    length = PRESETS.get(label)
    if length is None:
        raise InvalidTimeRange(
            "timeRange", f"timeRange must be one of {', '.join(PRESETS)} (got {label!r})"
        )
    end = _hour_floor(_utc(now)) + timedelta(hours=1)
    return TimeRange(label, end - length, end)
