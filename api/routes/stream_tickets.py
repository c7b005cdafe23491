"""Stream tickets: a browser's ``EventSource`` opens a live stream with ``?ticket=``
(``services/stream_tickets.py``), since it cannot send ``Authorization``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status

from api.deps import DbSession, State
from api.problems import problem_responses
from api.routes.orders import order_service, visible_order
from api.security import CurrentUser
from core.errors import ValidationFailed
from models.streams import StreamTicketCreate, StreamTicketPublic
from services.notifications.stream import InvalidLastEventId, resume_after
from services.order_repository import OrderNotFound

router = APIRouter(tags=["notifications"])

NOTIFICATION_STREAM = "/api/events/stream"
ORDER_STREAM = re.compile(r"^/api/orders/(?P<order_id>[^/?#]+)/events$")
TICKET_EXAMPLE = {
    "ticket": "stk_Xq3v9R0bq6kq1Ahx5T2mZcYwB8nE4uJd7fLp0sGiKoM",
    "path": "/api/events/stream",
    "url": "/api/events/stream?ticket=stk_Xq3v9R0bq6kq1Ahx5T2mZcYwB8nE4uJd7fLp0sGiKoM",
    "expiresIn": 60,
    "expiresAt": "2026-12-07T10:31:00.250000Z",
}


class InvalidStreamPath(ValidationFailed):
    code = "invalid_stream_path"
    title = "No live stream at this path"


@router.post(
    "/events/stream-tickets",
    summary="A ticket to open a live stream without a header (EventSource)",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamTicketPublic,
    responses={
        201: {"content": {"application/json": {"example": TICKET_EXAMPLE}}},
        **problem_responses(InvalidStreamPath, OrderNotFound, InvalidLastEventId),
    },
)
async def create_stream_ticket(
    body: StreamTicketCreate,
    caller: CurrentUser,
    state: State,
    session: DbSession,
    response: Response,
) -> StreamTicketPublic:
    """A browser's `EventSource` cannot send `Authorization`; it opens `url` (the stream's
    path with `?ticket=`) instead, so the long-lived access token never sits in a URL.
    A ticket opens the one stream `path` names (`/api/events/stream`, or
    `/api/orders/{id}/events` for an order the caller may follow: 404 `order_not_found`
    otherwise; any other path is 422 `invalid_stream_path`), within `expiresIn` seconds
    (`STREAM_TICKET_TTL_SECONDS`, 60). Its first use spends it: afterwards only that
    stream's reconnects (which send `Last-Event-ID`, as an EventSource does by itself) use
    it, each taking it over from the connection before (one stream per ticket), until the
    access token that asked for it expires. The stream lives as long as that token does
    and ends when it is revoked, as one opened with the token. `lastEventId`: where the
    stream resumes when its request carries no `Last-Event-ID` (a new EventSource, made
    after the last one's token expired; for `/api/events/stream` a notification id, 422
    `invalid_last_event_id` otherwise). A ticket is a credential: it is never logged,
    and its answer is never stored by `Idempotency-Key`. Errors when the stream is
    opened with it are 401: `invalid_stream_ticket`, `stream_ticket_expired`,
    `stream_ticket_used`, `stream_ticket_wrong_stream`, `token_expired`, `token_revoked`.
    """
    path = body.path
    if path == NOTIFICATION_STREAM:
        resume_after(body.last_event_id)  # a notification id, or 422 now rather than later
    else:
        order = ORDER_STREAM.match(path)
        if order is None:
            raise InvalidStreamPath(
                f"no live stream at {path}: {NOTIFICATION_STREAM} or /api/orders/{{id}}/events",
                field="path",
            )
        await visible_order(order_service(state, session), order["order_id"], caller)
    issued = await state.stream_tickets.mint(caller.claims, path, body.last_event_id)
    # A credential: no cache keeps it (RFC 6749 §5.1 asks the same of tokens).
    response.headers["Cache-Control"] = "no-store"
    left = (issued.use_by - datetime.now(UTC)).total_seconds()
    return StreamTicketPublic(
        ticket=issued.ticket,
        path=path,
        url=f"{path}?ticket={issued.ticket}",
        expires_in=max(0, round(left)),
        expires_at=issued.use_by,
    )
