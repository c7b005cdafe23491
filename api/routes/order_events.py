"""An order's states as server-sent events, pushed as they are committed."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from fastapi import APIRouter, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import LastEventId, ReadSession, State, release_connection
from api.problems import problem_responses
from api.routes.orders import order_service, timeline_reader, visible_order
from api.security import StreamingUser, stream_lease
from core.notifications import Lease
from models.orders import TimelineAudience
from services.order_repository import OrderNotFound
from services.order_watch import OrderWatch, is_settled, order_etag
from services.stream_slots import TooManyStreams

router = APIRouter(tags=["orders"])

# How soon a disconnected EventSource tries again (the `retry:` field), in milliseconds.
RECONNECT_MS = 1000
STREAM_EXAMPLE = (
    "retry: 1000\n"
    "event: order\n"
    "id: 3f9a1c0e7b2d4a5f8e6c1b0a9d8e7f6a\n"
    'data: {"id":"ord_…","status":"pending","timeline":[…],…}\n\n'
    ": ping\n\n"
    "event: order\n"
    "id: 9b0c2d4e6f8a1c3e5a7b9d1f3e5c7a9b\n"
    'data: {"id":"ord_…","status":"reserved",…}\n\n'
)


@router.get(
    "/orders/{order_id}/events",
    summary="Follow an order as it changes (server-sent events)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`text/event-stream` of `order` events",
            "content": {"text/event-stream": {"example": STREAM_EXAMPLE}},
        },
        204: {"description": "Settled, and `Last-Event-ID` is its final state: nothing to follow"},
        **problem_responses(OrderNotFound, TooManyStreams),
    },
)
async def order_events(
    order_id: str,
    caller: StreamingUser,
    state: State,
    session: ReadSession,
    last_event_id: LastEventId,
) -> Response:
    """A `text/event-stream`: an `order` event at once with the order as
    `GET /api/orders/{id}` shows it, then one each time it changes (status, timeline
    entry, payment, parcel), until it settles (`fulfillment_queued` or later, `failed`,
    `cancelled`): the stream ends after that state. Each event's `id` is the order's ETag
    (without quotes); an EventSource that reconnects sends it back as `Last-Event-ID` (an
    EventSource polyfill as `?lastEventId=`, read the same way; the header wins) and
    gets only what is newer, and a settled order whose final state it already has
    answers 204, which tells an EventSource to stop. The order is the caller's view of it:
    a customer's leaves out the staff-only timeline entries (no event for one), staff's
    has every entry. A comment line (`: ping`) is sent
    every 15 s while nothing happens. Same access as `GET /api/orders/{id}`: the owner or
    staff; anyone else gets 404. The stream also ends when the access token it was opened
    with expires or is revoked, or (an order followed as staff: another customer's, or
    one's own with its staff-only entries) once the caller is no longer staff (noticed
    within 15 s): reconnect with a fresh token and
    `Last-Event-ID`. A user has at most 10 live streams open (this one and
    `/api/events/stream` alike, `STREAM_MAX_PER_USER`): one more is 429
    `too_many_streams` (close one first).

    A browser's `EventSource`, which cannot send `Authorization`, opens it with
    `?ticket=` from `POST /api/events/stream-tickets` (for this order's path) instead,
    and reconnects with it by itself; the ticket's errors are as at
    `GET /api/events/stream`, and without a last event id its `lastEventId` is where the
    stream resumes. A `HEAD` checks the ticket without spending it."""
    # Reads only, in autocommit, as GET /api/orders/{id} does.
    service = order_service(state, session)
    order = await visible_order(service, order_id, caller)
    reader = timeline_reader(caller)
    public = await service.public(order, reader)
    resume = caller.last_event_id(last_event_id)
    last = f'"{resume.strip().strip(chr(34))}"' if resume else None
    if is_settled(public) and order_etag(public) == last:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    slot = await state.stream_slots.take(caller.user.id)
    # The stream holds no database connection; the watch reads in sessions of its own.
    await release_connection(session)
    # Someone else's order, or staff-only timeline entries, are followed as staff: the
    # stream ends if that stops (the reconnect reads as the caller is then).
    lease = stream_lease(
        state,
        caller,
        staff_only=order.user_id != caller.user.id or reader is TimelineAudience.STAFF,
    )
    return EventSourceResponse(
        state.stream_slots.serve(slot, _stream(state.order_watch, order.id, reader, last, lease)),
        ping=state.settings.order_stream_ping_seconds,
        headers={"Cache-Control": "no-store"},
    )


async def _stream(
    watch: OrderWatch, order_id: str, reader: TimelineAudience, last: str | None, lease: Lease
) -> AsyncGenerator[ServerSentEvent, None]:
    first = True
    try:
        async for now in watch.follow(order_id, reader, last, lease):
            yield ServerSentEvent(
                data=now.order.model_dump_json(by_alias=True),
                event="order",
                id=now.etag.strip('"'),
                retry=RECONNECT_MS if first else None,
            )
            first = False
    except OrderNotFound:
        return  # gone (an erased account's orders): nothing more will come
