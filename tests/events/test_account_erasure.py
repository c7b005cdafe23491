"""Deleting an account erases what the shop held of the person: in the deletion's
transaction (the account, its orders' email, the email ledger's addresses) and by the
relay's subscribers of ``user.deleted`` (notifications, analytics, the outbox's events,
webhook payloads)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from sqlmodel import col, select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.email import SendEmailInput, SendEmailResult
from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.analytics import AnalyticsEvent, AnalyticsEventLink, AnalyticsIdentity
from models.analytics_rollups import AnalyticsPerson
from models.base import utcnow
from models.email import EmailMessage, EmailStatus
from models.notifications import Notification
from models.orders import Order
from models.outbox import OutboxEvent
from models.webhook_deliveries import WebhookDelivery
from models.webhooks import WebhookEndpoint
from models.workflow_starts import WorkflowStart
from services.analytics import AnalyticsRecorder
from services.events.handlers.erasure import account_erasure_subscriber
from services.events.handlers.webhooks import as_sent, erase_person
from services.events.handling import handle_once
from services.events.subscribers import DomainEvent
from services.users import UserService
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.signing import envelope
from temporal.clients.starts import start_row
from tests.events.customers import create_customer, create_order
from tests.factories import unique_email
from tests.stack import suite_worker
from workflows.onboarding import UserOnboardingWorkflow
from workflows.types.carts import CART_ABANDONMENT_WORKFLOW
from workflows.types.onboarding import USER_ONBOARDING_WORKFLOW, OnboardingInput, RetrySpec

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


async def test_the_erasure_blanks_the_person_in_the_recorded_workflow_starts(
    db_sessions: SessionFactory, time_skipping_env: WorkflowEnvironment
) -> None:
    """Starts recorded before the welcome and the reminder stopped carrying the person
    (``workflow_starts`` rows, kept once started, owed until then) lose the email and
    name in the erasure's transaction: the welcome still owed (Temporal was away) and a
    reminder that ran. Another account's start and the account's order (no email or
    name in its input) are left as they were. The welcome, started after, is given the
    account's id and still runs."""
    async with transaction(db_sessions) as session:
        user = await create_customer(session, name=NAME, email=unique_email("grace"))
        email = user.email
        other = await create_customer(session, name="Ada Lovelace")
        order = await create_order(session, user, total=2500)
        retry = {"initial_seconds": 2.0, "max_interval_seconds": 60.0, "give_up_after_hours": 24.0}
        rows = {
            # As the release before wrote them.
            "welcome": WorkflowStart(
                workflow_type=USER_ONBOARDING_WORKFLOW,
                workflow_id=f"user-onboarding-{user.id}",
                task_queue="notifications",
                input={"user_id": user.id, "email": email, "name": NAME, "email_retry": retry},
            ),
            "reminder": WorkflowStart(
                workflow_type=CART_ABANDONMENT_WORKFLOW,
                workflow_id=f"cart-abandonment-cart_{user.id}",
                task_queue="notifications",
                input={
                    "cart_id": f"cart_{user.id}",
                    "user_id": user.id,
                    "email": email,
                    "name": NAME,
                    "delay_seconds": 3600.0,
                    "deadline": None,
                },
                start_signal="cart_changed",
                started_at=utcnow(),
            ),
            "order": WorkflowStart(
                workflow_type="OrderWorkflow",
                workflow_id=f"order-{order.id}",
                task_queue="orders",
                input={"order_id": order.id, "user_id": user.id},
                started_at=utcnow(),
            ),
            "other": WorkflowStart(
                workflow_type=USER_ONBOARDING_WORKFLOW,
                workflow_id=f"user-onboarding-{other.id}",
                task_queue="notifications",
                input={
                    "user_id": other.id,
                    "email": other.email,
                    "name": other.name,
                    "email_retry": retry,
                },
            ),
        }
        for row in rows.values():
            session.add(row)
    written = {kind: dict(row.input) for kind, row in rows.items()}

    async with transaction(db_sessions) as session:
        service = UserService(session, analytics=AnalyticsRecorder(False), password_min_length=15)
        await service.delete(await service.get(user.id))

    async with db_sessions() as session:
        kept = {
            kind: await session.get(WorkflowStart, row.id, populate_existing=True)
            for kind, row in rows.items()
        }
    inputs = {kind: row.input for kind, row in kept.items() if row is not None}
    assert set(inputs) == set(rows)  # none deleted
    for kind in ("welcome", "reminder"):
        assert email not in str(inputs[kind])
        assert NAME not in str(inputs[kind])
        assert inputs[kind] == written[kind] | {"email": "", "name": ""}
    assert inputs["order"] == written["order"]
    assert inputs["other"] == written["other"]
    # What this release records for a welcome: the blanked one is no different.
    assert OnboardingInput.model_validate(inputs["welcome"]) == OnboardingInput(
        user_id=user.id, email_retry=RetrySpec()
    )
    welcome = kept["welcome"]
    assert welcome is not None
    assert welcome.started_at is None  # still owed

    # Started now (as the relay would), it runs: the step is given the account.
    sent: list[SendEmailInput] = []

    @activity.defn(name="email.send")
    async def send(input: SendEmailInput) -> SendEmailResult:
        sent.append(input)
        return SendEmailResult(
            message_id=None, provider_message_id=None, already_sent=False, skipped="account_closed"
        )

    client = time_skipping_env.client
    queue = f"erased-{uuid4().hex[:6]}"
    welcome.task_queue = queue
    welcome.workflow_id = f"user-onboarding-{queue}"
    async with suite_worker(
        client, task_queue=queue, workflows=[UserOnboardingWorkflow], activities=[send]
    ):
        await start_row(client, welcome)
        await client.get_workflow_handle(welcome.workflow_id).result()
    assert [(s.to, s.user_id) for s in sent] == [("", user.id)]
    assert email not in str(sent[0].context)
