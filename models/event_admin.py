"""Wire schemas of the staff view of event deliveries: dead letters and their replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field as PydanticField
from pydantic import StringConstraints, model_validator

from core.events import EventType
from models.base import CamelModel, RequestModel
from models.events import DeliveryStatus

# At most this many deliveries go back to pending per bulk replay call.
BULK_REPLAY_LIMIT = 1000
SUBSCRIBER_PATTERN = r"^[A-Za-z0-9_-]+$"
SubscriberName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=SUBSCRIBER_PATTERN)
]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_EVENT_ID_EXAMPLE = "evt_01M8Q2ZKJ4F3V6X9T0B7N5R2C1"
_DATA_EXAMPLE = {"orderId": "ord_01M8Q2ZK…", "total": 24381, "currency": "USD"}


class DeliveryPublic(CamelModel):
    """One (event, subscriber) delivery."""

    subscriber: str = PydanticField(examples=["crm"])
    status: DeliveryStatus
    # Bumped by every replay.
    generation: int = PydanticField(examples=[1])
    # Attempts of the current generation (a replay starts again from 0).
    attempts: int = PydanticField(examples=[0])
    # The last failure; kept through a replay until the delivery succeeds.
    last_error: str | None = PydanticField(examples=["CrmUnavailable: HubSpot answered 503"])
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The Temporal workflow delivering this generation (with the event's other
    # subscribers started at the same time); null until started.
    workflow_id: str | None = PydanticField(
        default=None, examples=["events-evt_01M8Q2ZKJ4F3V6X9T0B7N5R2C1-5f0c2a9d41b7e3c8"]
    )


class DeliveryListItem(DeliveryPublic):
    """A delivery with its event, as the dead-letter list shows it."""

    event_id: str = PydanticField(examples=[_EVENT_ID_EXAMPLE])
    type: str = PydanticField(examples=["order.created"])
    aggregate_type: str = PydanticField(examples=["order"])
    aggregate_id: str = PydanticField(examples=["ord_01M8Q2ZK…"])
    seq: int = PydanticField(examples=[4211])
    data: dict[str, Any] = PydanticField(examples=[_DATA_EXAMPLE])
    event_created_at: datetime


class EventDetail(CamelModel):
    """An outbox event and every delivery it was fanned out to."""

    id: str = PydanticField(examples=[_EVENT_ID_EXAMPLE])
    type: str = PydanticField(examples=["order.created"])
    aggregate_type: str = PydanticField(examples=["order"])
    aggregate_id: str = PydanticField(examples=["ord_01M8Q2ZK…"])
    seq: int = PydanticField(examples=[4211])
    data: dict[str, Any] = PydanticField(examples=[_DATA_EXAMPLE])
    created_at: datetime
    dispatched_at: datetime | None
    delivered_at: datetime | None
    deliveries: list[DeliveryPublic]


class ReplayRequest(RequestModel):
    """Which failed deliveries of the event to replay: all of them when left out."""

    subscribers: list[SubscriberName] | None = PydanticField(
        default=None,
        min_length=1,
        max_length=100,
        examples=[["crm", "marketing"]],
    )


class ReplayResult(CamelModel):
    event_id: str = PydanticField(examples=[_EVENT_ID_EXAMPLE])
    # The deliveries now pending again.
    deliveries: list[DeliveryPublic]


class BulkReplayRequest(RequestModel):
    """Either `eventIds`, or a filter (`subscriber`, `type`, or both)."""

    event_ids: list[EventId] | None = PydanticField(
        default=None,
        min_length=1,
        max_length=BULK_REPLAY_LIMIT,
        examples=[[_EVENT_ID_EXAMPLE]],
    )
    subscriber: SubscriberName | None = PydanticField(default=None, examples=["crm"])
    type: EventType | None = PydanticField(default=None, examples=["order.created"])

    @model_validator(mode="after")
    def _one_way(self) -> BulkReplayRequest:
        filtered = self.subscriber is not None or self.type is not None
        if self.event_ids is not None and filtered:
            raise ValueError("give either eventIds or a filter (subscriber, type), not both")
        if self.event_ids is None and not filtered:
            raise ValueError("give eventIds, or subscriber and/or type")
        return self


class BulkReplayResult(CamelModel):
    # Failed deliveries put back to pending by this call (at most 1000).
    replayed: int = PydanticField(examples=[42])
    # How many events they belong to.
    events: int = PydanticField(examples=[40])
    # Whether failed deliveries matching the request remain (call again).
    more: bool = PydanticField(examples=[False])


class SubscriptionPublic(CamelModel):
    """A (subscriber, event type) pair as the workers' relays know it."""

    subscriber: str = PydanticField(examples=["crm"])
    event_type: str = PydanticField(examples=["order.created"])
    # When a relay last said its code has it (null: no relay ever did, only a worker
    # from before relays wrote theirs fanned deliveries out to it).
    known_at: datetime | None
    # A relay said so within three polls: a live worker delivers it.
    live: bool
    # Its pending deliveries (waiting for a worker that knows it, when not live).
    pending: int = PydanticField(examples=[0])
    oldest_pending_at: datetime | None
    # Not live with deliveries pending: when they are dropped unless a worker that
    # knows it comes back (EVENT_SUBSCRIBER_GRACE_SECONDS after it was last known).
    drop_after: datetime | None
