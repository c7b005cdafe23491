"""Deleting an account erases what the shop held of the person: in the deletion's
transaction (the account, its orders' email, the email ledger's addresses) and by the
relay's subscribers of ``user.deleted`` (notifications, analytics, the outbox's events,
webhook payloads)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import col, select

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.analytics import AnalyticsEvent, AnalyticsEventLink, AnalyticsIdentity
from models.analytics_rollups import AnalyticsPerson
from models.email import EmailMessage, EmailStatus
from models.notifications import Notification
from models.orders import Order
from models.outbox import OutboxEvent
from models.webhook_deliveries import WebhookDelivery
from models.webhooks import WebhookEndpoint
from services.analytics import AnalyticsRecorder
from services.events.handlers.erasure import account_erasure_subscriber
from services.events.handlers.webhooks import as_sent, erase_person
from services.events.handling import handle_once
from services.events.subscribers import DomainEvent
from services.users import UserService
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.signing import envelope
from tests.events.customers import create_customer, create_order
from tests.factories import unique_email

NAME = "Grace Hopper"


async def test_deleting_an_account_erases_the_person_everywhere_the_shop_kept_them(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session, name=NAME, email=unique_email("grace"))
        email = user.email
        order = await create_order(session, user, total=2500)
        other = await create_customer(session)
        others_order = await create_order(session, other, total=100)
        session.add(
            Notification(
                user_id=user.id,
                kind="shipment_shipped",
                title="Your parcel is on its way",
                body=f"A parcel from order {order.id} has shipped.",
                event_id=f"evt_{order.id}",
            )
        )
        session.add(
            EmailMessage(
                idempotency_key=f"welcome:{user.id}",
                template="welcome",
                to_email=email,
                subject=f"Welcome to Shopweave, {NAME}",
                status=EmailStatus.SENT,
            )
        )
        now = datetime.now(UTC)
        for name in ("product_view", "order_complete"):
            session.add(
                AnalyticsEvent(
                    event=name,
                    user_id=user.id,
                    anonymous_id=f"anon-{user.id}",
                    person_id=user.id,
                    properties={"orderId": order.id},
                )
            )
        session.add(
            AnalyticsEventLink(
                id=f"link-{user.id}", person_id=user.id, event="order_complete", created_at=now
            )
        )
        session.add(AnalyticsPerson(person_id=user.id, first_seen_at=now, first_order_at=now))
        session.add(AnalyticsIdentity(anonymous_id=f"anon-{user.id}", user_id=user.id))
        endpoint = WebhookEndpoint(
            url="https://erp.example.com/hooks", event_types=["*"], secret="s"
        )
        session.add(endpoint)
        await session.flush()
        created = {"userId": user.id, "email": email, "name": NAME, "role": "customer"}
        # As written before the deletion: kept in the outbox until pruned.
        written = [
            await publish(session, EventType.USER_CREATED, user.id, created),
            await publish(
                session,
                EventType.ORDER_DELIVERED,
                order.id,
                {"orderId": order.id, "userId": user.id, "email": email},
            ),
        ]
        others = await publish(
            session,
            EventType.ORDER_DELIVERED,
            others_order.id,
            {"orderId": others_order.id, "userId": other.id, "email": other.email},
        )
        session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=f"evt_{user.id}",
                event_type="user.created",
                payload=envelope("user.created", now, created),
            )
        )

    async with transaction(db_sessions) as session:
        service = UserService(session, analytics=AnalyticsRecorder(False), password_min_length=15)
        await service.delete(await service.get(user.id))
    async with db_sessions() as session:
        # The order is kept (accounting), without the address to reach the person.
        emails = await session.exec(
            select(Order.id, Order.email).where(col(Order.id).in_([order.id, others_order.id]))
        )
        kept = dict(emails.all())
        assert kept[order.id].endswith("@users.invalid")
        assert kept[others_order.id] == other.email
        ledger = (
            await session.exec(
                select(EmailMessage).where(EmailMessage.idempotency_key == f"welcome:{user.id}")
            )
        ).one()
        # Still known as sent (a retried send sends nothing), to no one named.
        assert ledger.status == "sent"
        assert ledger.to_email.endswith("@users.invalid")
        assert NAME not in ledger.subject

    async with transaction(db_sessions) as session:
        event = await publish(session, EventType.USER_DELETED, user.id, {"userId": user.id})
    erasure = account_erasure_subscriber()
    assert await handle_once(db_sessions, erasure, event.id) is True
    assert await handle_once(db_sessions, erasure, event.id) is False
    async with transaction(db_sessions) as session:
        await erase_person(WebhookDeliveryRepository(session), user.id)

    async with db_sessions() as session:
        notes = await session.exec(select(Notification).where(Notification.user_id == user.id))
        assert notes.all() == []
        events = (
            await session.exec(
                select(AnalyticsEvent).where(AnalyticsEvent.anonymous_id == f"anon-{user.id}")
            )
        ).all()
        # Kept, counted as one person still, but no longer the account's.
        assert sorted(e.event for e in events) == ["order_complete", "product_view"]
        assert {e.user_id for e in events} == {None}
        [pseudonym] = {e.person_id for e in events}
        assert pseudonym.startswith("erased:")
        assert user.id.lower() not in pseudonym.lower()
        link = await session.get(AnalyticsEventLink, f"link-{user.id}")
        assert link is not None
        assert link.person_id == pseudonym
        people = await session.exec(
            select(AnalyticsPerson.person_id).where(
                col(AnalyticsPerson.person_id).in_([user.id, pseudonym])
            )
        )
        assert people.all() == [pseudonym]
        assert await session.get(AnalyticsIdentity, f"anon-{user.id}") is None
        [delivery] = (
            await session.exec(
                select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
            )
        ).all()
        assert email not in str(delivery.payload)
        assert NAME not in str(delivery.payload)
        assert delivery.payload["data"]["userId"] == user.id

        for row in written:
            kept_event = await session.get(OutboxEvent, row.id, populate_existing=True)
            assert kept_event is not None
            assert kept_event.data["userId"] == user.id
            assert email not in str(kept_event.data)
            assert NAME not in str(kept_event.data)
        untouched = await session.get(OutboxEvent, others.id, populate_existing=True)
        assert untouched is not None
        assert untouched.data["email"] == other.email

        # An event about the person written before the deletion and sent after it.
        shipped = DomainEvent(
            id="evt_late",
            type=EventType.SHIPMENT_SHIPPED,
            aggregate_type="order",
            aggregate_id=order.id,
            seq=1,
            data={"orderId": order.id, "userId": user.id, "email": email},
            created_at=now,
        )
        assert email not in str(await as_sent(session, shipped))
        about_other = shipped.model_copy(
            update={"data": {"orderId": others_order.id, "userId": other.id, "email": other.email}}
        )
        assert await as_sent(session, about_other) == about_other.data
