"""An account erased while a notification for it is being written: once the erasure is
acknowledged and its ``account_erasure`` ran, the account has no notification (GDPR art.
17). The ``notifications`` subscriber is held between its read of the account and its
insert (on real PostgreSQL), the account is erased and ``user.deleted`` handled, the
subscriber let go.

Before, the subscriber's read took no lock: the erasure committed at once, its
``account_erasure`` found nothing to delete, and the held subscriber then wrote a
notification of the order (its items and total) for the erased account, pushed to any
live stream. Now the subscriber holds the account (``UserRepository.hold``) to its commit,
as an email to the person does: the erasure waits for the notification, and
``account_erasure`` then deletes it."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from models.notifications import Notification
from models.outbox import OutboxEvent
from services.events.handlers.erasure import account_erasure_subscriber
from services.events.handlers.notifications import notifications_subscriber
from services.events.handling import handle_once
from services.notifications.repository import NewNotification, NotificationRepository
from tests.events.customers import create_customer, create_order, order_created
from tests.events.erasure_race import Hold, delete_account, erase_while_held
from tests.factories import unique_email


async def _notified(sessions: SessionFactory, user_id: str) -> list[str]:
    async with sessions() as session:
        rows = await session.exec(
            select(Notification.title).where(col(Notification.user_id) == user_id)
        )
        return list(rows.all())


async def _handle_user_deleted(sessions: SessionFactory, user_id: str) -> None:
    """What the relay does once the deletion committed: ``account_erasure`` runs."""
    async with sessions() as session:
        deleted = (
            await session.exec(
                select(OutboxEvent.id).where(
                    col(OutboxEvent.aggregate_id) == user_id,
                    col(OutboxEvent.type) == EventType.USER_DELETED,
                )
            )
        ).one()
    assert await handle_once(sessions, account_erasure_subscriber(), deleted) is True


async def test_a_notification_being_written_at_an_erasure_is_erased_with_the_account(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = create_session_factory(engine)
    async with transaction(sessions) as session:
        user = await create_customer(session, name="Grace Hopper", email=unique_email("ntf-race"))
        order = await create_order(session, user, total=4_250)
        event = await publish(session, EventType.ORDER_CREATED, order.id, order_created(order))
    hold = Hold()
    add = NotificationRepository.add

    async def held_add(self: NotificationRepository, new: NewNotification) -> str | None:
        await hold.point()  # the account was read as active; nothing written yet
        return await add(self, new)

    monkeypatch.setattr(NotificationRepository, "add", held_add)

    async def erase() -> None:
        await delete_account(sessions, user.id)
        await _handle_user_deleted(sessions, user.id)

    await erase_while_held(
        engine, hold, lambda: handle_once(sessions, notifications_subscriber(), event.id), erase
    )
    assert await _notified(sessions, user.id) == []
