"""The ``marketing`` subscriber: the customer's SendGrid contact follows their orders
(through the real SDK to the sandbox over HTTP), once per event, and goes with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from integrations.marketing.client import MarketingProviderUnavailable
from integrations.marketing.factory import build_marketing_client
from models.users import UserStatus
from services.events.handlers.lifetime_value import LIFETIME_VALUE
from services.events.handlers.marketing import marketing_subscriber
from services.events.handling import handle_once
from services.events.repository import domain_event
from services.events.subscribers import DomainEvent, Subscriber
from services.marketing import MarketingContactRepository
from tests.events.customers import (
    create_customer,
    create_order,
    customer,
    order_cancelled,
    order_created,
    payment_refunded,
    published,
    refund_failed,
)
from tests.live import LiveStack

CREATED, CANCELLED, REFUNDED = (
    EventType.ORDER_CREATED,
    EventType.ORDER_CANCELLED,
    EventType.PAYMENT_REFUNDED,
)


@pytest.fixture
async def http(live: LiveStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        yield client
        await client.delete("/_sandbox/sendgrid/faults")


@pytest.fixture
def marketing(live: LiveStack, db_sessions: SessionFactory) -> Subscriber:
    return marketing_subscriber(build_marketing_client(live.settings), db_sessions)


async def _contact(http: httpx.AsyncClient, email: str) -> dict[str, Any] | None:
    found = (await http.get("/_sandbox/mail/marketing/contacts", params={"email": email})).json()
    assert len(found) <= 1
    return found[0] if found else None


async def _anonymise(session: AsyncSession, sessions: SessionFactory, user_id: str) -> None:
    """As ``UserService.delete`` does before ``user.deleted`` is published: the account's
    address replaced and its status ``deleted``, in ``session``'s transaction."""
    row = await customer(sessions, user_id)
    row.email = f"deleted+{user_id.lower()}@users.invalid"
    row.status = UserStatus.DELETED
    session.add(row)


async def test_an_order_makes_a_customer_contact_once(
    db_sessions: SessionFactory, marketing: Subscriber, http: httpx.AsyncClient
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=12_345)
    event_id = await published(db_sessions, CREATED, order.id, order_created(order))

    # Marketing first: the contact already says what the ledger will say with this order.
    assert await handle_once(db_sessions, marketing, event_id) is True

    contact = await _contact(http, user.email)
    assert contact is not None
    assert contact["lists"] == ["customers"]  # joined at the order: the automation's trigger
    assert contact["customFields"]["lifetime_value"] == 123.45
    assert contact["customFields"]["orders_count"] == 1
    assert contact["customFields"]["last_order_date"] == order.created_at.strftime("%m/%d/%Y")
    assert (contact["firstName"], contact["lastName"]) == ("Ada", "Lovelace")
    assert await handle_once(db_sessions, marketing, event_id) is False
    assert await _contact(http, user.email) == contact  # not even touched again
    # The lifetime value subscriber after it agrees with what marketing sent.
    assert await handle_once(db_sessions, LIFETIME_VALUE, event_id) is True
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (12_345, 1)


@pytest.mark.parametrize("marketing_first", [True, False], ids=["before", "after"])
async def test_refund_and_cancellation_update_the_contact_before_or_after_lifetime_value(
    db_sessions: SessionFactory,
    marketing: Subscriber,
    http: httpx.AsyncClient,
    marketing_first: bool,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        kept = await create_order(session, user, total=1_000)
        order = await create_order(session, user, total=5_000)
    events = [
        await published(db_sessions, CREATED, kept.id, order_created(kept)),
        await published(db_sessions, CREATED, order.id, order_created(order)),
        await published(db_sessions, REFUNDED, order.id, payment_refunded(order, 2_000)),
        await published(db_sessions, CANCELLED, order.id, order_cancelled(order)),
    ]
    seen: list[tuple[float, int]] = []
    for event_id in events:
        pair = (marketing, LIFETIME_VALUE) if marketing_first else (LIFETIME_VALUE, marketing)
        for subscriber in pair:
            assert await handle_once(db_sessions, subscriber, event_id) is True
        contact = await _contact(http, user.email)
        assert contact is not None
        seen.append(
            (contact["customFields"]["lifetime_value"], contact["customFields"]["orders_count"])
        )

    assert seen == [(10.0, 1), (60.0, 2), (40.0, 2), (10.0, 1)]
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (1_000, 1)


@pytest.mark.parametrize("marketing_first", [True, False], ids=["before", "after"])
async def test_a_refund_that_bounced_gives_the_contact_its_value_back(
    db_sessions: SessionFactory,
    marketing: Subscriber,
    http: httpx.AsyncClient,
    marketing_first: bool,
) -> None:
    """``payment.refund_failed``: the 30.00 the card's bank sent back is the shop's again,
    so the contact's lifetime value has it again, whichever subscriber runs first."""
    assert EventType.PAYMENT_REFUND_FAILED in marketing.event_types
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=5_000)
    events = [
        await published(db_sessions, CREATED, order.id, order_created(order)),
        await published(db_sessions, REFUNDED, order.id, payment_refunded(order, 3_000)),
        await published(
            db_sessions, EventType.PAYMENT_REFUND_FAILED, order.id, refund_failed(order, 3_000)
        ),
    ]
    seen: list[tuple[float, int]] = []
    for event_id in events:
        pair = (marketing, LIFETIME_VALUE) if marketing_first else (LIFETIME_VALUE, marketing)
        for subscriber in pair:
            assert await handle_once(db_sessions, subscriber, event_id) is True
        contact = await _contact(http, user.email)
        assert contact is not None
        seen.append(
            (contact["customFields"]["lifetime_value"], contact["customFields"]["orders_count"])
        )

    assert seen == [(50.0, 1), (20.0, 1), (50.0, 1)]
    assert await handle_once(db_sessions, marketing, events[-1]) is False
    row = await customer(db_sessions, user.id)
    assert (row.lifetime_value, row.orders_count) == (5_000, 1)


async def test_an_outage_leaves_no_receipt_and_the_retry_syncs(
    db_sessions: SessionFactory, marketing: Subscriber, http: httpx.AsyncClient
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=2_000)
    event_id = await published(db_sessions, CREATED, order.id, order_created(order))
    await handle_once(db_sessions, marketing, event_id)  # warm the field and list ids
    await http.delete("/_sandbox/sendgrid/faults")
    other = await published(db_sessions, CREATED, order.id, order_created(order))
    await http.put("/_sandbox/sendgrid/faults", json={"mode": "down", "to": user.email})

    with pytest.raises(MarketingProviderUnavailable) as caught:
        await handle_once(db_sessions, marketing, other)
    assert caught.value.retryable  # the relay retries it with backoff

    await http.delete("/_sandbox/sendgrid/faults")
    assert await handle_once(db_sessions, marketing, other) is True
    contact = await _contact(http, user.email)
    assert contact is not None
    assert contact["customFields"]["orders_count"] == 1


async def test_an_erased_customer_loses_the_contact_once(
    db_sessions: SessionFactory, marketing: Subscriber, http: httpx.AsyncClient
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=800)
    email = user.email
    await handle_once(
        db_sessions,
        marketing,
        await published(db_sessions, CREATED, order.id, order_created(order)),
    )
    assert await _contact(http, email) is not None
    # As UserService.delete does: anonymise, then publish user.deleted.
    async with transaction(db_sessions) as session:
        await _anonymise(session, db_sessions, user.id)
        deleted = await publish(session, EventType.USER_DELETED, user.id, {"userId": user.id})

    assert await handle_once(db_sessions, marketing, deleted.id) is True

    assert await _contact(http, email) is None
    async with db_sessions() as session:
        assert await MarketingContactRepository(session).emails(user.id) == []
    assert await handle_once(db_sessions, marketing, deleted.id) is False
    # A late order event of the erased customer does not bring the contact back.
    late = await published(db_sessions, REFUNDED, order.id, payment_refunded(order, 100))
    await handle_once(db_sessions, LIFETIME_VALUE, late)
    assert await handle_once(db_sessions, marketing, late) is True
    assert await _contact(http, email) is None


async def test_a_changed_address_replaces_the_contact(
    db_sessions: SessionFactory, marketing: Subscriber, http: httpx.AsyncClient
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        first = await create_order(session, user, total=100)
        second = await create_order(session, user, total=200)
    old = user.email
    placed = await published(db_sessions, CREATED, first.id, order_created(first))
    await handle_once(db_sessions, LIFETIME_VALUE, placed)
    await handle_once(db_sessions, marketing, placed)
    async with transaction(db_sessions) as session:
        row = await customer(db_sessions, user.id)
        row.email = f"new-{old}"
        session.add(row)
    await handle_once(
        db_sessions,
        marketing,
        await published(db_sessions, CREATED, second.id, order_created(second)),
    )
    assert await _contact(http, old) is None
    contact = await _contact(http, f"new-{old}")
    assert contact is not None
    assert contact["customFields"]["orders_count"] == 2


async def test_a_payment_that_fails_before_the_order_counted_makes_no_contact(
    db_sessions: SessionFactory, marketing: Subscriber, http: httpx.AsyncClient
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=3_000)
    declined = order_cancelled(order) | {"failureCode": "card_declined", "reason": "declined"}
    event_id = await published(db_sessions, EventType.PAYMENT_FAILED, order.id, declined)
    for subscriber in (LIFETIME_VALUE, marketing):
        assert await handle_once(db_sessions, subscriber, event_id) is True
    assert await _contact(http, user.email) is None


async def _unpublished(
    sessions: SessionFactory, type: EventType, aggregate_id: str, data: dict[str, Any]
) -> DomainEvent:
    """An event as ``publish`` writes it, rolled back: no relay (this file's, or another
    file's on the same database) delivers it beside the test."""
    async with sessions() as session:
        event = domain_event(await publish(session, type, aggregate_id, data))
        await session.rollback()
    return event


async def _handled(sessions: SessionFactory, subscriber: Subscriber, event: DomainEvent) -> None:
    """The handler in a transaction of its own, as the relay runs it (without a receipt:
    the event is not in the outbox)."""
    async with transaction(sessions) as session:
        await subscriber.handle(event, session)


async def test_a_contact_whose_upsert_answer_was_lost_is_erased_with_the_customer(
    engine: AsyncEngine, live: LiveStack, http: httpx.AsyncClient
) -> None:
    # Committed, on connections of their own, as in production: the handler's failure
    # rolls back its transaction, not what was committed beside it.
    sessions = create_session_factory(engine)
    marketing = marketing_subscriber(build_marketing_client(live.settings), sessions)
    async with transaction(sessions) as session:
        user = await create_customer(session)
        order = await create_order(session, user, total=2_500)
    email = user.email
    created = await _unpublished(sessions, CREATED, order.id, order_created(order))
    # SendGrid keeps the contact, then the answer is lost: the delivery fails, to retry.
    fault = {"mode": "accept_then_fail", "count": 1, "to": email}
    assert (await http.put("/_sandbox/sendgrid/faults", json=fault)).status_code == 204
    with pytest.raises(MarketingProviderUnavailable):
        await _handled(sessions, marketing, created)
    assert await _contact(http, email) is not None

    # Before the retry, the customer deletes their account: anonymised, as
    # UserService.delete does, before user.deleted is handled.
    async with transaction(sessions) as session:
        await _anonymise(session, sessions, user.id)
    deleted = await _unpublished(sessions, EventType.USER_DELETED, user.id, {"userId": user.id})
    await _handled(sessions, marketing, deleted)

    assert await _contact(http, email) is None  # erased, though its upsert never committed
    await _handled(sessions, marketing, created)  # the retry: the account is closed
    assert await _contact(http, email) is None
