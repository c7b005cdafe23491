"""``POST /api/analytics/track``: events from clients, written off the request path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, status

from api.deps import AnonymousIdHeader, RedisClient, State
from api.problems import problem_responses
from api.security import OptionalUser, client_info
from core.errors import ValidationFailed
from models.analytics_track import (
    INVALID_PROPERTY_VALUE,
    SEED_TRACK_EXAMPLE,
    TrackAccepted,
    TrackBatch,
    TrackRequest,
)
from services.analytics.tracking import (
    AnalyticsDisabled,
    SignInRequired,
    Tracker,
    TrackingRateLimited,
    TrackingService,
    UserMismatch,
)

router = APIRouter(prefix="/analytics", tags=["analytics"])

TRACK_EXAMPLES = {
    "seed": {
        "summary": "The seed's custom event (userId: the caller's own id)",
        "value": SEED_TRACK_EXAMPLE,
    },
    "guest": {
        "summary": "A guest's event, with its anonymous id and context",
        "value": {
            "event": "newsletter_signup",
            "anonymousId": "anon_5f1c2a",
            "sessionId": "sess_42",
            "timestamp": "2026-12-04T10:15:00Z",
            "page": "/blog/winter-sale",
            "referrer": "https://www.google.com/",
            "properties": {"source": "footer", "tags": ["winter", "sale"]},
        },
    },
    "batch": {
        "summary": "A batch (1 to 100 events)",
        "value": {
            "batch": [
                {"event": "product_view", "properties": {"productId": "prod_456"}},
                {"event": "product_search", "properties": {"search": "headphones"}},
            ]
        },
    },
}


@router.post(
    "/track",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Track an event, or a batch of events",
    response_model=TrackAccepted,
    responses=problem_responses(
        (ValidationFailed, "invalid_event_name"),
        (ValidationFailed, "reserved_event"),
        (ValidationFailed, "properties_not_flat"),
        (ValidationFailed, INVALID_PROPERTY_VALUE),
        (ValidationFailed, "properties_too_large"),
        (ValidationFailed, "invalid_text"),
        (ValidationFailed, "batch_too_large"),
        (ValidationFailed, "batch_empty"),
        SignInRequired,
        UserMismatch,
        TrackingRateLimited,
        AnalyticsDisabled,
    ),
)
async def track(
    body: Annotated[TrackRequest, Body(openapi_examples=TRACK_EXAMPLES)],
    request: Request,
    state: State,
    redis: RedisClient,
    caller: OptionalUser,
    anonymous_id: AnonymousIdHeader = None,
) -> TrackAccepted:
    """Record one event (the seed's `event`, `userId`, `properties`) or `{"batch": […]}`
    of 1 to 100. Answers 202 `{"accepted": n}`; the events are written within a second.

    Signed in, the user comes from the token: a `userId` other than the caller's answers
    403 `user_mismatch`, and a `userId` without a token 401 `sign_in_required`. Guests
    send `anonymousId` (or the `X-Anonymous-Id` header); signing in with it links their
    events to the user. `timestamp` more than 24 h away from the server's time is
    replaced by the server's. Event names: `product_view`, `product_search` or custom
    (`^[a-z][a-z0-9_]{1,63}$`); events the shop records itself are refused (422
    `reserved_event`). `properties`: a flat object (scalars or arrays of scalars), at
    most 4 KB. Each caller may send `ANALYTICS_RATE_LIMIT` events a minute (429
    `rate_limited` with `Retry-After`); with `ANALYTICS_ENABLED=false`, 503
    `analytics_disabled`.
    """
    events = body.batch if isinstance(body, TrackBatch) else [body]
    tracker = Tracker(
        user_id=caller.user.id if caller else None,
        anonymous_id=anonymous_id or next((e.anonymous_id for e in events if e.anonymous_id), None),
        ip=client_info(request).ip,
    )
    service = TrackingService(state.settings, redis, state.ingest)
    return TrackAccepted(accepted=await service.track(tracker, events))
