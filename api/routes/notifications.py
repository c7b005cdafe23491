"""The caller's notifications, and their live stream (``GET /api/events/stream``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import (
    DbSession,
    LastEventId,
    Limit,
    Pagination,
    ReadSession,
    State,
    release_connection,
)
from api.problems import problem_responses
from api.security import CurrentUser, ReadingUser, StreamingUser, stream_lease
from core.notifications import Lease
from models.notifications import (
    NotificationPage,
    NotificationPublic,
    ReadAllRequest,
    ReadAllResult,
)
from services.notifications.inbox import InvalidNotificationId, NotificationInbox
from services.notifications.repository import NotificationNotFound
from services.notifications.stream import InvalidLastEventId, NotificationFeed, resume_after
from services.stream_slots import TooManyStreams

router = APIRouter(tags=["notifications"])

# How soon a disconnected EventSource tries again (the `retry:` field), in milliseconds.
RECONNECT_MS = 1000
NOTIFICATION_EXAMPLE = {
    "id": "ntf_01JEX4Q8Z3K5M7N9P1R3T5V7X9",
    "kind": "order_confirmed",
    "title": "Order ord_01JEX4Q2A8B0C2D4E6F8G0H2J4 confirmed",
    "body": "We have your order (2 items, 59.98 USD) and will let you know when it ships.",
    "data": {"orderId": "ord_01JEX4Q2A8B0C2D4E6F8G0H2J4"},
    "createdAt": "2026-12-06T14:10:02.113000Z",
    "readAt": None,
}
PAGE_EXAMPLE = {
    "items": [NOTIFICATION_EXAMPLE],
    "total": 1,
    "page": 1,
    "limit": 20,
    "unreadCount": 1,
}
STREAM_EXAMPLE = (
    ": connected\n"
    "id: ntf_01JEX4Q2A8B0C2D4E6F8G0H2J4\n"
    "retry: 1000\n\n"
    ": ping\n\n"
    "event: notification\n"
    "id: ntf_01JEX4Q8Z3K5M7N9P1R3T5V7X9\n"
    'data: {"id":"ntf_01JEX4Q8Z3K5M7N9P1R3T5V7X9","kind":"order_confirmed",'
    '"title":"Order ord_… confirmed",…}\n\n'
)


@router.get(
    "/notifications",
    summary="Your notifications",
    response_model=NotificationPage,
    responses={
        200: {"content": {"application/json": {"example": PAGE_EXAMPLE}}},
        **problem_responses(),
    },
)
async def list_notifications(
    caller: ReadingUser,
    session: ReadSession,
    page: Pagination = 1,
    limit: Limit = 20,
    unread: Annotated[bool, Query(description="Only the unread ones")] = False,
) -> NotificationPage:
    """The caller's notifications, newest first (what happened to their orders, parcels,
    refunds and returns), with `unreadCount` across all of them. `?unread=true` lists
    only the unread ones."""
    return await NotificationInbox(session).page(
        caller.user.id, unread=unread, page=page, limit=limit
    )


@router.post(
    "/notifications/read-all",
    summary="Mark all your notifications read",
    response_model=ReadAllResult,
    responses={
        200: {"content": {"application/json": {"example": {"marked": 3, "unreadCount": 0}}}},
        **problem_responses(InvalidNotificationId),
    },
)
async def read_all_notifications(
    caller: CurrentUser, session: DbSession, body: ReadAllRequest | None = None
) -> ReadAllResult:
    """Every unread notification of the caller is marked read now; `marked` says how
    many were (0 when none was: calling it again changes nothing). With
    `{"upTo": "ntf_…"}`, the newest one the caller has seen (the first of the list, the
    last one streamed), only it and older ones are: one written while the caller looked
    stays unread, and `unreadCount` counts it. An `upTo` that is no notification id is
    422 `invalid_notification_id`."""
    return await NotificationInbox(session).read_all(
        caller.user.id, body.up_to if body is not None else None
    )


@router.post(
    "/notifications/{notification_id}/read",
    summary="Mark a notification read",
    response_model=NotificationPublic,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": NOTIFICATION_EXAMPLE | {"readAt": "2026-12-06T14:12:40.500000Z"}
                }
            }
        },
        **problem_responses(NotificationNotFound),
    },
)
async def read_notification(
    notification_id: str, caller: CurrentUser, session: DbSession
) -> NotificationPublic:
    """The notification, marked read (its first `readAt` is kept if it already was).
    Another user's notification, or none, is 404 `notification_not_found`."""
    return await NotificationInbox(session).read(caller.user.id, notification_id)


@router.get(
    "/events/stream",
    summary="Your notifications as they happen (server-sent events)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`text/event-stream` of `notification` events",
            "content": {"text/event-stream": {"example": STREAM_EXAMPLE}},
        },
        **problem_responses(InvalidLastEventId, TooManyStreams),
    },
)
async def event_stream(
    caller: StreamingUser,
    state: State,
    session: ReadSession,
    last_event_id: LastEventId,
) -> EventSourceResponse:
    """A `text/event-stream` of the caller's notifications as they are written: each a
    `notification` event whose `id` is the notification's id and whose `data` is the
    notification as `GET /api/notifications` lists it. Without `Last-Event-ID` it starts
    with the next one written (a client that has just listed its notifications sends the
    newest listed id as `Last-Event-ID`, and misses none written in between). It opens
    with a `: connected` comment whose `id` is where it starts (the newest notification
    then); an EventSource that reconnects sends the last `id` it got back as
    `Last-Event-ID` and first gets every notification written after it, oldest first
    (nothing is lost while it was away, even before the first notification came), then
    the live ones. A comment line (`: ping`) is sent every 15 s while nothing happens.
    The stream lasts until the client leaves, or until the access token it was opened
    with expires or is revoked (signed out, the password changed, the account deleted;
    noticed within 15 s): the client reconnects with a fresh token and `Last-Event-ID`,
    and misses nothing. An EventSource polyfill that sends `?lastEventId=` instead of the
    header is read the same way (the header wins when both come). A last event id that
    is no notification id is 422 `invalid_last_event_id`. A user has at most 10 live
    streams open (this one and orders' `/events` alike, `STREAM_MAX_PER_USER`): one more
    is 429 `too_many_streams` (close one first); a stream's slot is given back when it
    ends.

    A browser's `EventSource` cannot send `Authorization`: it opens the stream with
    `?ticket=` from `POST /api/events/stream-tickets` instead (the ticket stands for the
    access token that asked for it, with every rule above), and reconnects with it by
    itself. A ticket that is unknown, expired, spent (opened a stream already, and this
    is no reconnect: no last event id) or for another stream is 401
    `invalid_stream_ticket`, `stream_ticket_expired`, `stream_ticket_used`,
    `stream_ticket_wrong_stream`; its token expired or revoked, `token_expired`,
    `token_revoked`. Without a last event id, a ticket's `lastEventId` is where the stream
    resumes. A `HEAD` (a link prefetcher, a proxy) answers as the `GET` would, its ticket
    checked but neither spent nor taken over."""
    after = resume_after(caller.last_event_id(last_event_id))
    slot = await state.stream_slots.take(caller.user.id)
    # The stream holds no database connection; the feed reads in sessions of its own.
    await release_connection(session)
    lease = stream_lease(state, caller)
    return EventSourceResponse(
        state.stream_slots.serve(slot, _stream(state.notifications, caller.user.id, after, lease)),
        ping=state.settings.order_stream_ping_seconds,
        headers={"Cache-Control": "no-store"},
    )


async def _stream(
    feed: NotificationFeed, user_id: str, after: str | None, lease: Lease
) -> AsyncGenerator[ServerSentEvent, None]:
    async with feed.open(user_id, after, lease) as notifications:
        # First the `retry:` field, once the stream is watching: from this line on, no
        # notification written is missed. Its `id:` (where the stream starts) becomes the
        # EventSource's last event id: a reconnect before any notification came resumes
        # after it instead of from a later "now" (the gap's notifications lost).
        yield ServerSentEvent(comment="connected", id=notifications.after, retry=RECONNECT_MS)
        async for notification in notifications:
            yield ServerSentEvent(
                data=notification.model_dump_json(by_alias=True),
                event="notification",
                id=notification.id,
            )
