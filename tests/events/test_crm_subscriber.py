"""The CRM subscriber, run as the relay runs it (``handle_once``) on real outbox events,
against the HubSpot sandbox over HTTP through the real SDK: one contact and one deal per
order however often an event is delivered, stages as the order moves, erasure when the
customer is deleted, and exactly 20 deals for 20 orders with 30% of calls failing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.stack.process import free_port
from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.ids import IdPrefix, new_id
from core.outbox import publish
from core.settings import Settings
from integrations.crm.client import Contact, CrmUnavailable, Deal, DealStage
from integrations.crm.hubspot import HubSpotCrm
from models.orders import Order, OrderStatus
from models.users import User, UserStatus
from services.events.handlers.crm import MalformedEvent, crm_subscriber, split_name
from services.events.handling import handle_once
from services.events.repository import EventRepository
from services.events.subscribers import Subscriber
from tests.events.customers import create_customer, create_order, order_created
from tests.live import live_api


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    live = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(live) as base:
        yield live, base


@pytest.fixture
async def sandbox(api: tuple[Settings, str]) -> AsyncIterator[httpx.AsyncClient]:
    _, base = api
    async with httpx.AsyncClient(base_url=f"{base}/_sandbox/hubspot") as http:
        yield http
        await http.delete("/faults")


@pytest.fixture
def subscriber(api: tuple[Settings, str]) -> Subscriber:
    live, _ = api
    return crm_subscriber(HubSpotCrm.from_settings(live))


async def _customer(sessions: SessionFactory, name: str = "Ada King Lovelace") -> User:
    async with transaction(sessions) as session:
        return await create_customer(session, name=name)


async def _publish(
    sessions: SessionFactory, type: EventType, aggregate_id: str, data: dict[str, Any]
) -> str:
    async with transaction(sessions) as session:
        return (await publish(session, type, aggregate_id, data)).id


async def _order_created(
    sessions: SessionFactory, user: User, total: int = 4599
) -> tuple[str, str]:
    """An ``order.created`` as ``OrderService.confirm`` writes it: (event id, order id)."""
    order_id = new_id(IdPrefix.ORDER)
    event_id = await _publish(
        sessions,
        EventType.ORDER_CREATED,
        order_id,
        {
            "orderId": order_id,
            "userId": user.id,
            "total": total,
            "currency": "USD",
            "items": [{"productId": "prod_test", "quantity": 1, "unitPrice": total}],
        },
    )
    return event_id, order_id


async def _held(sandbox: httpx.AsyncClient, kind: str, **params: str) -> list[dict[str, Any]]:
    response = await sandbox.get(f"/{kind}", params=params)
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()
    return records


async def test_one_contact_and_one_deal_however_often_order_created_arrives(
    db_sessions: SessionFactory, subscriber: Subscriber, sandbox: httpx.AsyncClient
) -> None:
    user = await _customer(db_sessions)
    event_id, order_id = await _order_created(db_sessions, user, total=4599)

    assert await handle_once(db_sessions, subscriber, event_id) is True
    assert await handle_once(db_sessions, subscriber, event_id) is False  # the receipt
    # A delivery whose receipt was lost (a worker killed after HubSpot answered, before
    # the commit) runs the handler again: HubSpot's keys keep it to one deal.
    async with db_sessions() as session:
        event = await EventRepository(session).event(event_id)
        assert event is not None
        await subscriber.handle(event, session)
        await session.rollback()

    [contact] = await _held(sandbox, "contacts", userId=user.id)
    assert (contact["properties"]["email"], contact["properties"]["firstname"]) == (
        user.email,
        "Ada King",
    )
    assert contact["properties"]["lastname"] == "Lovelace"
    [deal] = await _held(sandbox, "deals", orderId=order_id)
    properties = deal["properties"]
    assert (properties["dealname"], properties["amount"], properties["deal_currency_code"]) == (
        f"Order {order_id}",
        "45.99",
        "USD",
    )
    assert (properties["pipeline"], properties["dealstage"]) == ("default", "contractsent")
    assert properties["closedate"].endswith("Z")
    assert deal["associations"] == {"contacts": [contact["id"]]}


async def test_the_deal_follows_the_order_and_the_contact_goes_with_the_customer(
    db_sessions: SessionFactory, subscriber: Subscriber, sandbox: httpx.AsyncClient
) -> None:
    user = await _customer(db_sessions)
    created, shipped = await _order_created(db_sessions, user)
    created_too, cancelled = await _order_created(db_sessions, user)
    for event_id in (created, created_too):
        assert await handle_once(db_sessions, subscriber, event_id) is True

    ready = await _publish(
        db_sessions, EventType.FULFILLMENT_ORDER_READY, shipped, {"orderId": shipped}
    )
    assert await handle_once(db_sessions, subscriber, ready) is True
    cancel = {"orderId": cancelled, "userId": user.id, "total": 4599, "currency": "USD"}
    lost = await _publish(db_sessions, EventType.ORDER_CANCELLED, cancelled, cancel)
    assert await handle_once(db_sessions, subscriber, lost) is True
    [won_deal] = await _held(sandbox, "deals", orderId=shipped)
    [lost_deal] = await _held(sandbox, "deals", orderId=cancelled)
    assert won_deal["properties"]["dealstage"] == "closedwon"
    assert lost_deal["properties"]["dealstage"] == "closedlost"

    # Cancelled before it was confirmed: no order.created, no deal, nothing to do.
    never = new_id(IdPrefix.ORDER)
    early = await _publish(
        db_sessions, EventType.ORDER_CANCELLED, never, cancel | {"orderId": never}
    )
    assert await handle_once(db_sessions, subscriber, early) is True
    assert await _held(sandbox, "deals", orderId=never) == []

    [contact] = await _held(sandbox, "contacts", userId=user.id)
    assert won_deal["associations"] == {"contacts": [contact["id"]]}
    deleted = await _publish(db_sessions, EventType.USER_DELETED, user.id, {"userId": user.id})
    assert await handle_once(db_sessions, subscriber, deleted) is True
    assert await _held(sandbox, "contacts", userId=user.id) == []
    [kept] = await _held(sandbox, "deals", orderId=shipped)  # the sale stays, the person goes
    assert kept["associations"] == {"contacts": []}


async def test_a_new_account_is_a_contact_and_a_failed_capture_loses_the_deal(
    db_sessions: SessionFactory, subscriber: Subscriber, sandbox: httpx.AsyncClient
) -> None:
    user = await _customer(db_sessions)
    signed = await _publish(db_sessions, EventType.USER_CREATED, user.id, {"userId": user.id})
    assert await handle_once(db_sessions, subscriber, signed) is True
    [contact] = await _held(sandbox, "contacts", userId=user.id)
    assert contact["properties"]["email"] == user.email

    created, order_id = await _order_created(db_sessions, user)
    assert await handle_once(db_sessions, subscriber, created) is True
    failed = {"orderId": order_id, "userId": user.id, "failureCode": "capture_failed"}
    ended = await _publish(db_sessions, EventType.PAYMENT_FAILED, order_id, failed)
    assert await handle_once(db_sessions, subscriber, ended) is True
    [deal] = await _held(sandbox, "deals", orderId=order_id)
    assert deal["properties"]["dealstage"] == "closedlost"
    assert [c["id"] for c in await _held(sandbox, "contacts", userId=user.id)] == [contact["id"]]


async def test_an_order_of_a_deleted_customer_is_a_deal_without_a_contact(
    db_sessions: SessionFactory, subscriber: Subscriber, sandbox: httpx.AsyncClient
) -> None:
    user = await _customer(db_sessions)
    event_id, order_id = await _order_created(db_sessions, user)
    async with transaction(db_sessions) as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.status = UserStatus.DELETED
        session.add(row)
    assert await handle_once(db_sessions, subscriber, event_id) is True
    [deal] = await _held(sandbox, "deals", orderId=order_id)
    assert deal["associations"] == {}
    assert await _held(sandbox, "contacts", userId=user.id) == []


async def test_an_event_without_what_the_crm_needs_is_a_dead_letter_at_once(
    db_sessions: SessionFactory, subscriber: Subscriber
) -> None:
    user = await _customer(db_sessions)
    order_id = new_id(IdPrefix.ORDER)
    event_id = await _publish(
        db_sessions, EventType.ORDER_CREATED, order_id, {"orderId": order_id, "userId": user.id}
    )
    with pytest.raises(MalformedEvent) as refused:
        await handle_once(db_sessions, subscriber, event_id)
    assert refused.value.retryable is False
    assert refused.value.code == "malformed_event"


async def test_twenty_orders_with_30_percent_faults_make_exactly_twenty_deals(
    db_sessions: SessionFactory, subscriber: Subscriber, sandbox: httpx.AsyncClient
) -> None:
    users = [await _customer(db_sessions, name=f"Customer {i}") for i in range(20)]
    orders = [
        await _order_created(db_sessions, user, total=1000 + i) for i, user in enumerate(users)
    ]
    # 30% of calls fail before taking effect; some more take effect and lose the answer.
    faults = {"failureRate": 0.3, "lostAnswerRate": 0.15}
    assert (await sandbox.put("/faults", json=faults)).status_code == 204
    failures = 0
    for event_id, _ in orders:
        for _attempt in range(60):
            try:
                assert await handle_once(db_sessions, subscriber, event_id) is True
                break
            except CrmUnavailable:  # the relay retries these with backoff
                failures += 1
        else:
            pytest.fail(f"{event_id} never got through")
    await sandbox.delete("/faults")

    assert failures >= 5  # the faults did happen
    for i, (user, (_, order_id)) in enumerate(zip(users, orders, strict=True)):
        [contact] = await _held(sandbox, "contacts", userId=user.id)
        [deal] = await _held(sandbox, "deals", orderId=order_id)
        assert deal["properties"]["amount"] == f"{10 + i / 100:.2f}"
        assert deal["associations"] == {"contacts": [contact["id"]]}
        assert contact["associations"] == {"deals": [deal["id"]]}


@pytest.mark.parametrize(
    ("status", "later", "stage"),
    [
        (OrderStatus.CANCELLED, EventType.ORDER_CANCELLED, "closedlost"),
        (OrderStatus.FULFILLMENT_QUEUED, EventType.FULFILLMENT_ORDER_READY, "closedwon"),
    ],
    ids=["cancelled", "won"],
)
async def test_an_order_created_replayed_after_the_order_moved_on_makes_its_deal_there(
    db_sessions: SessionFactory,
    subscriber: Subscriber,
    sandbox: httpx.AsyncClient,
    status: OrderStatus,
    later: EventType,
    stage: str,
) -> None:
    # order.created's delivery to the CRM became a dead letter (HubSpot down for longer
    # than its retries); a dead letter does not hold back its order's later events, so
    # the cancellation (or the hand-over to the warehouse) found no deal to move. Staff
    # then replay the dead letter: the deal must not be made "placed" for ever.
    user = await _customer(db_sessions)
    async with transaction(db_sessions) as session:
        order = await create_order(session, user, total=4599)
    created = await _publish(db_sessions, EventType.ORDER_CREATED, order.id, order_created(order))
    async with transaction(db_sessions) as session:
        row = await session.get(Order, order.id)
        assert row is not None
        row.status = status
        session.add(row)
        moved = (await publish(session, later, order.id, {"orderId": order.id})).id
    assert await handle_once(db_sessions, subscriber, moved) is True
    assert await _held(sandbox, "deals", orderId=order.id) == []

    assert await handle_once(db_sessions, subscriber, created) is True  # the replay

    [deal] = await _held(sandbox, "deals", orderId=order.id)
    assert deal["properties"]["dealstage"] == stage
    assert deal["properties"]["closedate"].endswith("Z")


class _SlowContactCrm:
    """A stand-in CRM whose contact upsert waits until released: the moment between
    reading the customer and the CRM's answer, held open."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    async def upsert_contact(self, contact: Contact) -> str:
        self.writing.set()
        await self.release.wait()
        return "1"

    async def upsert_deal(self, deal: Deal, contact_id: str | None) -> str:
        return "2"

    async def set_deal_stage(self, order_id: str, stage: DealStage, at: datetime) -> bool:
        return True

    async def forget_contacts(self, user_id: str) -> int:
        return 0


async def test_a_customer_is_not_deleted_while_their_contact_is_being_written(
    engine: AsyncEngine,
) -> None:
    # Otherwise user.deleted could be handled (finding no contact to erase) before the
    # contact made from the account's last active moment reached the CRM.
    sessions = create_session_factory(engine)
    user = await _customer(sessions)
    event_id, _ = await _order_created(sessions, user)
    crm = _SlowContactCrm()
    handling = asyncio.create_task(handle_once(sessions, crm_subscriber(crm), event_id))
    await asyncio.wait_for(crm.writing.wait(), 10)
    async with sessions() as session:
        await (await session.connection()).execute(text("SET LOCAL lock_timeout = '300ms'"))
        row = await session.get(User, user.id)  # reading is not held up
        assert row is not None
        row.status = UserStatus.DELETED
        session.add(row)
        with pytest.raises(DBAPIError, match="lock"):
            await session.flush()
    crm.release.set()
    assert await handling is True
    async with transaction(sessions) as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.status = UserStatus.DELETED  # now it goes through
        session.add(row)


def test_names_split_into_first_and_last() -> None:
    assert split_name("Ada King Lovelace") == ("Ada King", "Lovelace")
    assert split_name("  Cher ") == ("Cher", "")
    assert split_name("") == ("", "")
