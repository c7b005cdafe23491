"""``POST /api/analytics/track``: who may send what, how often, and when it happened."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from redis.asyncio import Redis

from core.errors import Forbidden, RateLimited, ShopError, Unauthenticated
from core.settings import Settings
from models.analytics_track import TrackEvent
from models.base import utcnow
from services.analytics.ingest import EventBuffer, PendingEvent
from services.throttle import count_in_window

# A client's clock may be off, and a phone may send yesterday's events when it is back
# online; beyond this, its timestamp is not believed and the server's time is used.
CLOCK_TOLERANCE = timedelta(hours=24)
RATE_PREFIX = "throttle:track"


class AnalyticsDisabled(ShopError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "analytics_disabled"
    title = "Analytics are turned off"


class UserMismatch(Forbidden):
    code = "user_mismatch"
    title = "Events can only be tracked for yourself"


class SignInRequired(Unauthenticated):
    code = "sign_in_required"
    title = "A userId needs that user's access token"


class TrackingRateLimited(RateLimited):
    code = "rate_limited"
    title = "Too many events"


@dataclass(frozen=True)
class Tracker:
    """Who is sending: the signed-in user, else the visitor (anonymous id) and address."""

    user_id: str | None
    anonymous_id: str | None
    ip: str | None


def event_time(given: datetime | None, now: datetime) -> datetime:
    """The client's time when within ±24 h of ours, else ours."""
    if given is None:
        return now
    if given.tzinfo is None:
        given = given.replace(tzinfo=UTC)
    return given if abs(given - now) <= CLOCK_TOLERANCE else now


def _rate_key(kind: str, value: str) -> str:
    return f"{RATE_PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


class TrackingService:
    def __init__(self, settings: Settings, redis: Redis, buffer: EventBuffer) -> None:
        self.settings = settings
        self.redis = redis
        self.buffer = buffer

    async def track(self, tracker: Tracker, events: Sequence[TrackEvent]) -> int:
        """Check, count against the caller's limit, then hand to the batch writer."""
        if not self.settings.analytics_enabled:
            raise AnalyticsDisabled(
                "analytics are turned off on this server (ANALYTICS_ENABLED=false); "
                "nothing was recorded"
            )
        for event in events:
            self._check_user(tracker, event.user_id)
        await self._count(tracker, len(events))
        now = utcnow()
        await self.buffer.add(
            [
                PendingEvent(
                    event=e.event,
                    user_id=tracker.user_id,
                    anonymous_id=e.anonymous_id or tracker.anonymous_id,
                    session_id=e.session_id,
                    page=e.page,
                    referrer=e.referrer,
                    properties=dict(e.properties),
                    created_at=event_time(e.timestamp, now),
                )
                for e in events
            ]
        )
        return len(events)

    @staticmethod
    def _check_user(tracker: Tracker, user_id: str | None) -> None:
        if user_id is None or user_id == tracker.user_id:
            return
        if tracker.user_id is None:
            raise SignInRequired(
                f"userId {user_id[:40]} needs that user's access token "
                "(`Authorization: Bearer …`); a guest sends anonymousId instead",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise UserMismatch(f"userId {user_id[:40]} is not the signed-in user")

    async def _count(self, tracker: Tracker, amount: int) -> None:
        s = self.settings
        limits: dict[str, int] = {}
        if tracker.user_id:
            limits[_rate_key("user", tracker.user_id)] = s.analytics_rate_limit
        else:
            # A guest may make up a new anonymous id at will: the address bounds that.
            if tracker.anonymous_id:
                limits[_rate_key("anon", tracker.anonymous_id)] = s.analytics_rate_limit
            if tracker.ip:
                limits[_rate_key("ip", tracker.ip)] = (
                    s.analytics_rate_limit_per_ip
                    if tracker.anonymous_id
                    else s.analytics_rate_limit
                )
        if not limits:
            return
        retry_after = await count_in_window(
            self.redis, limits, s.analytics_rate_window_seconds, amount
        )
        if retry_after is not None:
            raise TrackingRateLimited(
                f"more than the events allowed per {s.analytics_rate_window_seconds} s; "
                f"try again in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
                retry_after=retry_after,
            )
