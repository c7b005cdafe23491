"""Event deliveries (staff): dead letters, one event's deliveries, replay."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, status

from api.deps import AppSettings, DbSession
from api.problems import problem_responses
from api.security import StaffUser
from core.events import EventType
from models.base import Page
from models.event_admin import (
    BULK_REPLAY_LIMIT,
    SUBSCRIBER_PATTERN,
    BulkReplayRequest,
    BulkReplayResult,
    DeliveryListItem,
    DeliveryPublic,
    EventDetail,
    ReplayRequest,
    ReplayResult,
    SubscriptionPublic,
)
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from services.events.admin import DeliveryFilter, EventAdminService, EventNotFailed, EventNotFound

router = APIRouter(prefix="/admin/events", tags=["events"])

EVENT_ID = "evt_01M8Q2ZKJ4F3V6X9T0B7N5R2C1"


def _delivery(row: EventDelivery) -> DeliveryPublic:
    return DeliveryPublic.model_validate(row, from_attributes=True)


def _item(delivery: EventDelivery, event: OutboxEvent) -> DeliveryListItem:
    assert event.seq is not None
    return DeliveryListItem(
        **_delivery(delivery).model_dump(),
        event_id=event.id,
        type=event.type,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        seq=event.seq,
        data=event.data,
        event_created_at=event.created_at,
    )


@router.get(
    "",
    summary="Event deliveries and dead letters (staff)",
    response_model=Page[DeliveryListItem],
    responses=problem_responses(),
)
async def deliveries(
    caller: StaffUser,
    session: DbSession,
    delivery_status: Annotated[
        DeliveryStatus | None,
        Query(alias="status", description="`failed` lists the dead letters", examples=["failed"]),
    ] = None,
    subscriber: Annotated[
        str | None, Query(max_length=64, pattern=SUBSCRIBER_PATTERN, examples=["crm"])
    ] = None,
    type: Annotated[EventType | None, Query(examples=["order.created"])] = None,
    aggregate_id: Annotated[
        str | None, Query(alias="aggregateId", max_length=64, examples=["ord_01M8Q2ZK"])
    ] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[DeliveryListItem]:
    """One item per (event, subscriber) delivery, newest first, with the event's `type`,
    aggregate, `seq` and `data`: `status`, `attempts`, `lastError`, `startedAt`,
    `finishedAt`. `?status=failed` lists the dead letters; filter further by
    `subscriber`, `type` and `aggregateId`. Paginated like every list."""
    rows, total = await EventAdminService(session).deliveries(
        DeliveryFilter(
            status=delivery_status,
            subscriber=subscriber,
            event_type=type,
            aggregate_id=aggregate_id,
        ),
        offset=(page - 1) * limit,
        limit=limit,
    )
    return Page(items=[_item(d, e) for d, e in rows], total=total, page=page, limit=limit)


@router.post(
    "/replay",
    summary="Replay many dead letters (staff)",
    response_model=BulkReplayResult,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(),
)
async def replay_many(
    body: Annotated[
        BulkReplayRequest,
        Body(
            openapi_examples={
                "events": {"summary": "These events", "value": {"eventIds": [EVENT_ID]}},
                "filter": {
                    "summary": "A subscriber's dead letters of one type",
                    "value": {"subscriber": "crm", "type": "order.created"},
                },
            }
        ),
    ],
    caller: StaffUser,
    session: DbSession,
) -> BulkReplayResult:
    """The failed deliveries of `eventIds`, or those matching `subscriber` and/or `type`,
    go back to pending (oldest first, at most 1000 a call) and the relay starts them at
    once. `replayed` counts them, `events` their events; `more: true` means failed ones
    matching are left: call again. Nothing failed matches: 202 with `replayed: 0`."""
    result = await EventAdminService(session).replay_many(
        event_ids=body.event_ids,
        subscriber=body.subscriber,
        event_type=body.type,
        limit=BULK_REPLAY_LIMIT,
    )
    return BulkReplayResult(replayed=result.replayed, events=result.events, more=result.more)


@router.get(
    "/subscribers",
    summary="Subscribers the workers know, and deliveries waiting for one (staff)",
    response_model=list[SubscriptionPublic],
    responses=problem_responses(),
)
async def subscribers(
    caller: StaffUser, session: DbSession, settings: AppSettings
) -> list[SubscriptionPublic]:
    """One item per (subscriber, event type) a worker's relay has known (`knownAt`: when
    one last said so) or a delivery is pending for. `live: false` with `pending` > 0:
    no running worker knows it (a rolling deploy that adds it is under way, or it was
    taken out of the code); its deliveries wait, and are dropped at `dropAfter` unless
    a worker that knows it runs by then."""
    poll = settings.event_relay_poll_seconds
    states = await EventAdminService(session).subscription_states(
        grace=timedelta(seconds=settings.event_subscriber_grace_seconds),
        live_within=timedelta(seconds=3 * poll),
    )
    return [SubscriptionPublic.model_validate(s, from_attributes=True) for s in states]


@router.get(
    "/{event_id}",
    summary="An event and its deliveries (staff)",
    response_model=EventDetail,
    responses=problem_responses(EventNotFound),
)
async def event(
    event_id: Annotated[str, Path(max_length=64, examples=[EVENT_ID])],
    caller: StaffUser,
    session: DbSession,
) -> EventDetail:
    """The outbox event (`dispatchedAt`: fanned out to its subscribers; `deliveredAt`:
    every subscriber has it) and one delivery per subscriber. 404 `event_not_found`."""
    found = await EventAdminService(session).event(event_id)
    row = found.event
    assert row.seq is not None
    return EventDetail(
        id=row.id,
        type=row.type,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        seq=row.seq,
        data=row.data,
        created_at=row.created_at,
        dispatched_at=row.dispatched_at,
        delivered_at=row.delivered_at,
        deliveries=[_delivery(d) for d in found.deliveries],
    )


@router.post(
    "/{event_id}/replay",
    summary="Replay an event's dead letters (staff)",
    response_model=ReplayResult,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(EventNotFound, EventNotFailed),
)
async def replay(
    event_id: Annotated[str, Path(max_length=64, examples=[EVENT_ID])],
    caller: StaffUser,
    session: DbSession,
    body: Annotated[
        ReplayRequest | None,
        Body(
            openapi_examples={
                "all": {"summary": "Every failed delivery of the event", "value": {}},
                "some": {"summary": "Only these subscribers", "value": {"subscribers": ["crm"]}},
            }
        ),
    ] = None,
) -> ReplayResult:
    """The event's failed deliveries (only those of `subscribers`, if given) go back to
    pending with `generation` + 1 and `attempts` 0; `lastError` stays until one succeeds.
    The relay starts them at once, after earlier pending events of the same aggregate.
    409 `event_not_failed` when none is failed (`statuses` gives each subscriber's);
    404 `event_not_found`."""
    subscribers = body.subscribers if body is not None else None
    replayed = await EventAdminService(session).replay(event_id, subscribers)
    return ReplayResult(event_id=event_id, deliveries=[_delivery(d) for d in replayed])
