"""What a subscriber is: a name, the event types it takes and a handler.

The handler contract (the relay keeps its side of it):

- ``handle(event, session)`` runs inside a transaction that also records the
  (event id, subscriber) pair as handled and marks the delivery done. Database effects
  made through ``session`` therefore happen exactly once: a redelivered or replayed
  event whose pair is recorded never reaches the handler again.
- Effects outside the database (a CRM deal, an email) must be keyed at the provider
  (an idempotency key or a unique property derived from the event), because a crash
  between the provider's answer and the commit repeats the call.
- Raising a ``ShopError`` whose ``retryable`` is false (a business error) makes the
  delivery a dead letter at once, with the error. Anything else is transient: it is
  retried with backoff, and becomes a dead letter with its last error only when the
  retries run out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType


class DomainEvent(BaseModel):
    """An outbox row as handlers see it."""

    id: str
    type: EventType
    aggregate_type: str
    aggregate_id: str
    seq: int
    data: dict[str, Any]
    created_at: datetime
    # Where it was written (a W3C traceparent), for the deliveries' spans.
    traceparent: str | None = None


Handler = Callable[[DomainEvent, AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class Subscriber:
    name: str
    event_types: frozenset[EventType]
    handle: Handler

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"subscriber names are [A-Za-z0-9_-]+, got {self.name!r}")
        if not self.event_types:
            raise ValueError(f"subscriber {self.name!r} takes no event type")

    def wants(self, event_type: str) -> bool:
        return event_type in self.event_types


def subscribers_of(event_type: str, subscribers: Iterable[Subscriber]) -> list[Subscriber]:
    return [s for s in subscribers if s.wants(event_type)]
