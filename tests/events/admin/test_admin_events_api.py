"""Staff list event deliveries (dead letters), read one event, and replay failed ones."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest

from core.db import transaction
from core.events import EventType
from core.settings import Settings
from models.events import DeliveryStatus
from services.events.admin import EventAdminService
from services.events.subscriptions import SubscriptionRepository
from tests.events.admin.seeding import Seeder, unique_subscriber
from tests.factories import signed_up

FAILED = DeliveryStatus.FAILED
DELIVERED = DeliveryStatus.DELIVERED
PENDING = DeliveryStatus.PENDING


async def test_dead_letters_are_listed_newest_first_filtered_and_paged(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder
) -> None:
    crm, mail = unique_subscriber("crm"), unique_subscriber("mail")
    order = "ord_" + crm[-10:]
    first = await seed.event(
        aggregate_id=order,
        deliveries={crm: FAILED, mail: DELIVERED},
        age=timedelta(minutes=3),
        data={"orderId": order, "total": 2500},
    )
    second = await seed.event(
        EventType.ORDER_CANCELLED,
        aggregate_id=order,
        deliveries={crm: FAILED, mail: PENDING},
        age=timedelta(minutes=2),
    )
    other = await seed.event(deliveries={crm: FAILED}, age=timedelta(minutes=1))

    page = await client.get(
        "/api/admin/events", params={"status": "failed", "subscriber": crm}, headers=staff
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["total"], body["page"], body["limit"]) == (3, 1, 20)
    assert [i["eventId"] for i in body["items"]] == [other.id, second.id, first.id]
    item = body["items"][2]
    assert item == {
        "eventId": first.id,
        "type": "order.created",
        "aggregateType": "order",
        "aggregateId": order,
        "seq": first.seq,
        "data": {"orderId": order, "total": 2500},
        "eventCreatedAt": item["eventCreatedAt"],
        "subscriber": crm,
        "status": "failed",
        "generation": 0,
        "attempts": 5,
        "lastError": "CrmUnavailable: HubSpot answered 503",
        "createdAt": item["createdAt"],
        "startedAt": item["startedAt"],
        "finishedAt": item["finishedAt"],
        "workflowId": f"events-{first.id}-seeded",
    }
    assert item["finishedAt"] is not None

    async def ids(**params: str | int) -> list[str]:
        answer = await client.get("/api/admin/events", params=params, headers=staff)
        assert answer.status_code == 200, answer.text
        return [f"{i['eventId']}/{i['subscriber']}" for i in answer.json()["items"]]

    assert await ids(subscriber=crm, limit=2, page=2) == [f"{first.id}/{crm}"]
    assert await ids(subscriber=crm, type="order.cancelled") == [f"{second.id}/{crm}"]
    assert await ids(aggregateId=order) == [
        f"{second.id}/{crm}",
        f"{second.id}/{mail}",
        f"{first.id}/{crm}",
        f"{first.id}/{mail}",
    ]
    assert await ids(aggregateId=order, status="pending") == [f"{second.id}/{mail}"]
    assert await ids(subscriber=mail, status="failed") == []
    everyone = await ids(status="failed", limit=100)
    assert f"{other.id}/{crm}" in everyone

    bad = await client.get("/api/admin/events", params={"status": "lost"}, headers=staff)
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")


async def test_deliveries_of_one_instant_page_in_a_stable_order(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder
) -> None:
    """One event's deliveries share its time and seq: the listing orders them by subscriber
    too, so paging through them shows each once (a sort of ties alone may answer two
    pages with one row, another never)."""
    prefix = unique_subscriber("tie")
    # Written in the reverse of the order they are listed in.
    subscribers = [f"{prefix}_{n}" for n in range(7, -1, -1)]
    row = await seed.event(deliveries=dict.fromkeys(subscribers, FAILED))
    seen: list[str] = []
    for page in range(1, 5):
        answer = await client.get(
            "/api/admin/events",
            params={"aggregateId": row.aggregate_id, "limit": 2, "page": page},
            headers=staff,
        )
        assert answer.status_code == 200, answer.text
        seen += [item["subscriber"] for item in answer.json()["items"]]
    assert seen == sorted(subscribers)


async def test_an_event_with_all_its_deliveries(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder
) -> None:
    crm, mail = unique_subscriber("crm"), unique_subscriber("mail")
    event = await seed.event(deliveries={mail: DELIVERED, crm: FAILED})
    answer = await client.get(f"/api/admin/events/{event.id}", headers=staff)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["type"], body["seq"], body["deliveredAt"]) == (
        event.id,
        "order.created",
        event.seq,
        None,
    )
    assert body["dispatchedAt"] is not None
    assert {d["subscriber"]: d["status"] for d in body["deliveries"]} == {
        crm: "failed",
        mail: "delivered",
    }
    missing = await client.get("/api/admin/events/evt_nope", headers=staff)
    assert (missing.status_code, missing.json()["code"]) == (404, "event_not_found")


async def test_only_staff_see_or_replay_events(client: httpx.AsyncClient, seed: Seeder) -> None:
    crm = unique_subscriber("crm")
    event = await seed.event(deliveries={crm: FAILED})
    _, customer = await signed_up(client)
    calls = [
        ("GET", "/api/admin/events?status=failed", None),
        ("GET", f"/api/admin/events/{event.id}", None),
        ("POST", f"/api/admin/events/{event.id}/replay", {}),
        ("POST", "/api/admin/events/replay", {"eventIds": [event.id]}),
    ]
    for method, path, body in calls:
        # As every staff route answers: 403 staff_only to a customer, 401 to no one.
        denied = await client.request(method, path, headers=customer, json=body)
        assert (denied.status_code, denied.json()["code"]) == (403, "staff_only"), path
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, path
    assert (await seed.delivery(event.id, crm)).status == FAILED


def _plain_url(settings: Settings) -> str:
    url = settings.resolved_database_url
    assert url is not None
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_replaying_an_event_puts_its_dead_letters_back_and_wakes_the_relay(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder, settings: Settings
) -> None:
    crm, mail, ledger = (unique_subscriber(n) for n in ("crm", "mail", "ledger"))
    event = await seed.event(deliveries={crm: FAILED, mail: FAILED, ledger: DELIVERED})
    listener = await asyncpg.connect(_plain_url(settings))
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("shop_outbox", lambda *args: notified.put_nowait(args[2]))
    try:
        answer = await client.post(
            f"/api/admin/events/{event.id}/replay", headers=staff, json={"subscribers": [crm]}
        )
        assert answer.status_code == 202, answer.text
        assert await asyncio.wait_for(notified.get(), 5) == "shop_outbox"
    finally:
        await listener.close()
    body = answer.json()
    assert body["eventId"] == event.id
    assert [
        (d["subscriber"], d["status"], d["generation"], d["attempts"]) for d in body["deliveries"]
    ] == [(crm, "pending", 1, 0)]
    # The reason stays visible until the delivery succeeds.
    assert body["deliveries"][0]["lastError"] == "CrmUnavailable: HubSpot answered 503"
    assert body["deliveries"][0]["startedAt"] is None
    assert body["deliveries"][0]["finishedAt"] is None
    assert body["deliveries"][0]["workflowId"] is None  # the next pass starts a new one

    replayed = await seed.delivery(event.id, crm)
    assert (replayed.status, replayed.generation, replayed.started_at, replayed.workflow_id) == (
        PENDING,
        1,
        None,
        None,
    )
    assert (await seed.delivery(event.id, mail)).status == FAILED
    assert (await seed.delivery(event.id, ledger)).generation == 0
    outbox = await seed.outbox(event.id)
    assert outbox is not None
    assert outbox.delivered_at is None

    # Without a body: every failed one left (mail).
    rest = await client.post(f"/api/admin/events/{event.id}/replay", headers=staff)
    assert rest.status_code == 202, rest.text
    assert [d["subscriber"] for d in rest.json()["deliveries"]] == [mail]

    again = await client.post(f"/api/admin/events/{event.id}/replay", headers=staff)
    assert again.status_code == 409
    problem = again.json()
    assert problem["code"] == "event_not_failed"
    assert problem["statuses"] == {crm: "pending", mail: "pending", ledger: "delivered"}
    assert "pending" in problem["detail"]


async def test_replay_of_an_event_with_nothing_failed_or_no_event(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder
) -> None:
    crm = unique_subscriber("crm")
    delivered = await seed.event(deliveries={crm: DELIVERED})
    conflict = await client.post(f"/api/admin/events/{delivered.id}/replay", headers=staff)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "event_not_failed")
    assert conflict.json()["statuses"] == {crm: "delivered"}

    failed = await seed.event(deliveries={crm: FAILED})
    elsewhere = await client.post(
        f"/api/admin/events/{failed.id}/replay",
        headers=staff,
        json={"subscribers": ["someone_else"]},
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "event_not_failed")
    assert (await seed.delivery(failed.id, crm)).status == FAILED

    unknown = await client.post("/api/admin/events/evt_missing/replay", headers=staff)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "event_not_found")
    bad = await client.post(
        f"/api/admin/events/{failed.id}/replay", headers=staff, json={"subscribers": ["no way"]}
    )
    assert bad.status_code == 422


async def test_bulk_replay_by_ids_or_by_filter(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder
) -> None:
    crm, mail = unique_subscriber("crm"), unique_subscriber("mail")
    a = await seed.event(deliveries={crm: FAILED, mail: FAILED})
    b = await seed.event(EventType.ORDER_CANCELLED, deliveries={crm: FAILED})
    c = await seed.event(deliveries={crm: FAILED, mail: DELIVERED})

    by_ids = await client.post(
        "/api/admin/events/replay", headers=staff, json={"eventIds": [a.id, c.id]}
    )
    assert by_ids.status_code == 202, by_ids.text
    assert by_ids.json() == {"replayed": 3, "events": 2, "more": False}
    assert (await seed.delivery(a.id, mail)).generation == 1
    assert (await seed.delivery(b.id, crm)).status == FAILED

    by_filter = await client.post(
        "/api/admin/events/replay",
        headers=staff,
        json={"subscriber": crm, "type": "order.cancelled"},
    )
    assert by_filter.json() == {"replayed": 1, "events": 1, "more": False}
    assert (await seed.delivery(b.id, crm)).status == PENDING

    nothing = await client.post("/api/admin/events/replay", headers=staff, json={"subscriber": crm})
    assert nothing.status_code == 202
    assert nothing.json() == {"replayed": 0, "events": 0, "more": False}

    refusals: list[dict[str, object]] = [
        {},
        {"eventIds": [a.id], "subscriber": crm},
        {"eventIds": []},
        {"type": "order.lost"},
    ]
    for body in refusals:
        refused = await client.post("/api/admin/events/replay", headers=staff, json=body)
        assert refused.status_code == 422, body


@pytest.mark.parametrize("limit", [1, 2])
async def test_bulk_replay_is_capped_and_says_more_are_left(seed: Seeder, limit: int) -> None:
    crm = unique_subscriber("crm")
    events = [await seed.event(deliveries={crm: FAILED}) for _ in range(3)]
    async with transaction(seed.sessions) as session:
        first = await EventAdminService(session).replay_many(subscriber=crm, limit=limit)
    assert (first.replayed, first.events, first.more) == (limit, limit, True)
    # Oldest first.
    assert [(await seed.delivery(e.id, crm)).status for e in events] == [PENDING] * limit + [
        FAILED
    ] * (3 - limit)
    async with transaction(seed.sessions) as session:
        rest = await EventAdminService(session).replay_many(subscriber=crm, limit=3)
    assert (rest.replayed, rest.more) == (3 - limit, False)


async def test_subscribers_show_deliveries_waiting_for_a_worker_that_knows_them(
    client: httpx.AsyncClient, staff: dict[str, str], seed: Seeder
) -> None:
    live, ghost = unique_subscriber("live"), unique_subscriber("ghost")
    async with transaction(seed.sessions) as session:
        await SubscriptionRepository(session).beat([(live, "order.created")])
    event = await seed.event(deliveries={ghost: PENDING}, age=timedelta(minutes=2))

    response = await client.get("/api/admin/events/subscribers", headers=staff)
    assert response.status_code == 200, response.text
    mine = {i["subscriber"]: i for i in response.json() if i["subscriber"] in (live, ghost)}
    assert mine[live]["live"] is True
    assert (mine[live]["eventType"], mine[live]["pending"], mine[live]["dropAfter"]) == (
        "order.created",
        0,
        None,
    )
    waiting = mine[ghost]
    assert (waiting["knownAt"], waiting["live"], waiting["pending"]) == (None, False, 1)
    created = datetime.fromisoformat(waiting["oldestPendingAt"].replace("Z", "+00:00"))
    assert abs(created - event.created_at) < timedelta(milliseconds=1)
    drop_after = datetime.fromisoformat(waiting["dropAfter"].replace("Z", "+00:00"))
    assert drop_after == created + timedelta(seconds=600)
    _, customer = await signed_up(client)
    refused = await client.get("/api/admin/events/subscribers", headers=customer)
    assert refused.status_code == 403
