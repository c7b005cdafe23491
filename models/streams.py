"""Stream tickets on the wire: what a client asks for to open a live stream with a
browser's ``EventSource`` (``services/stream_tickets.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from models.base import CamelModel, RequestModel


class StreamTicketCreate(RequestModel):
    path: str = Field(
        max_length=200,
        description="The stream the ticket opens: `/api/events/stream` or "
        "`/api/orders/{id}/events` (an order the caller may follow)",
        examples=["/api/events/stream"],
    )
    last_event_id: str | None = Field(
        default=None,
        max_length=100,
        description="Where the stream resumes when its request carries no `Last-Event-ID` "
        "(a new EventSource sends none): the `id` of the last event the client got from an "
        "earlier stream, such as one that ended when its access token expired",
    )


class StreamTicketPublic(CamelModel):
    ticket: str = Field(description="Send it as `?ticket=`; never log it")
    path: str
    url: str = Field(description="The path with the ticket: what `new EventSource(…)` opens")
    expires_in: int = Field(description="Seconds left to open the stream with it")
    expires_at: datetime = Field(description="When it can no longer open the stream")
