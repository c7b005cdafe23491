"""An account erased while an email to it is on its way: once the erasure is
acknowledged, nothing more reaches the address (GDPR art. 17). The send is held between
its read of the address and the provider call (through the real SendGrid SDK to the
sandbox, on real PostgreSQL), the account is erased, the send let go.

Before, the erasure committed at once and the held send then went out to the erased
person. Now the send holds the account (``UserRepository.hold``) until the provider has
the message and the erasure locks it first: the erasure is acknowledged after the email
went, and any send after it finds the account closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities, SendEmailInput, SendEmailResult
from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from integrations.email.factory import build_sender
from integrations.email.sender import EmailSender, OutgoingEmail
from integrations.email.templates import EmailTemplates
from models.users import User
from services.email import EmailService
from services.events.handlers import payment_failed_email
from services.events.handling import handle_once
from tests.events.conftest import MailApi
from tests.events.customers import create_customer, create_order
from tests.events.erasure_race import Hold, delete_account, erase_while_held
from tests.factories import unique_email


class HeldSender:
    """The real sender, each send held after the address was read until released."""

    def __init__(self, sender: EmailSender) -> None:
        self._sender = sender
        self.hold = Hold()

    async def send(self, email: OutgoingEmail) -> str:
        await self.hold.point()
        return await self._sender.send(email)

    async def find_accepted(self, arg: str, value: str) -> str | None:
        return await self._sender.find_accepted(arg, value)


def _held_emails(sessions: SessionFactory, mail_api: MailApi) -> tuple[EmailService, HeldSender]:
    held = HeldSender(build_sender(mail_api.settings))
    service = EmailService(sessions, held, EmailTemplates(), mail_api.settings.email_from)
    return service, held


async def _customer(sessions: SessionFactory, prefix: str) -> User:
    async with transaction(sessions) as session:
        return await create_customer(session, email=unique_email(prefix))


async def _erase_while_held(
    engine: AsyncEngine,
    mail_api: MailApi,
    user: User,
    held: HeldSender,
    send: Callable[[], Coroutine[Any, Any, object]],
) -> list[dict[str, Any]]:
    """Hold ``send`` at the provider call, erase ``user``, let it go; the mailbox of the
    user's address as it was when the erasure was acknowledged, once all is done."""
    sessions = create_session_factory(engine)
    address = user.email

    async def erase() -> list[dict[str, Any]]:
        await delete_account(sessions, user.id)
        return await mail_api.mailbox(address)  # what had reached them by the acknowledgment

    return await erase_while_held(engine, held.hold, send, erase)


async def test_a_welcome_on_its_way_at_an_erasure_goes_before_it_is_acknowledged(
    engine: AsyncEngine, mail_api: MailApi
) -> None:
    sessions = create_session_factory(engine)
    user = await _customer(sessions, "welcome-race")
    emails, held = _held_emails(sessions, mail_api)
    activities = EmailActivities(emails, sessions)

    async def welcome(key: str) -> SendEmailResult:
        return await ActivityEnvironment().run(
            activities.send_email,
            SendEmailInput(
                idempotency_key=key,
                template="welcome",
                to=user.email,
                context={"name": user.name, "email": user.email},
                user_id=user.id,
            ),
        )

    acknowledged = await _erase_while_held(
        engine, mail_api, user, held, lambda: welcome(f"welcome:{user.id}")
    )
    # Nothing reached the address after the erasure was acknowledged: the held welcome
    # went before it.
    assert await _sent(mail_api, user) == acknowledged
    assert [m["subject"] for m in acknowledged] == ["Welcome to Shopweave, Ada Lovelace"]
    later = await welcome(f"welcome-again:{user.id}")
    assert later.skipped == "account_closed"
    assert await _sent(mail_api, user) == acknowledged


async def test_an_event_email_on_its_way_at_an_erasure_goes_before_it_is_acknowledged(
    engine: AsyncEngine, mail_api: MailApi
) -> None:
    sessions = create_session_factory(engine)
    user = await _customer(sessions, "payment-race")
    async with transaction(sessions) as session:
        order = await create_order(session, user, total=4_250)
        event = await publish(
            session, EventType.PAYMENT_FAILED, order.id, {"orderId": order.id, "total": 4_250}
        )
    emails, held = _held_emails(sessions, mail_api)
    subscriber = payment_failed_email(emails, mail_api.settings)

    acknowledged = await _erase_while_held(
        engine, mail_api, user, held, lambda: handle_once(sessions, subscriber, event.id)
    )
    assert await _sent(mail_api, user) == acknowledged
    assert len(acknowledged) == 1


async def _sent(mail_api: MailApi, user: User) -> list[dict[str, Any]]:
    return await mail_api.mailbox(user.email)


async def test_sends_that_hold_their_accounts_never_take_every_connection(
    engine: AsyncEngine, mail_api: MailApi
) -> None:
    """A send holds its account on one connection and books the email on another. Three
    welcomes at once on a pool of two (no overflow) each took one and waited for a second
    until the pool's timeout: they failed (sqlalchemy's TimeoutError). Now at most half
    the pool's connections hold at once (``core.db.holders``), and all three go."""
    small = create_async_engine(
        engine.url.render_as_string(hide_password=False),
        pool_size=2,
        max_overflow=0,
        pool_timeout=3,
    )
    try:
        sessions = create_session_factory(small)
        users = [await _customer(sessions, f"pool-{n}") for n in range(3)]
        emails, held = _held_emails(sessions, mail_api)
        activities = EmailActivities(emails, sessions)

        async def welcome(user: User) -> SendEmailResult:
            return await ActivityEnvironment().run(
                activities.send_email,
                SendEmailInput(
                    idempotency_key=f"welcome:{user.id}",
                    template="welcome",
                    to=user.email,
                    context={"name": user.name, "email": user.email},
                    user_id=user.id,
                ),
            )

        held.hold.release.set()  # nothing held at the provider: the pool alone decides
        sent = await asyncio.gather(*(welcome(user) for user in users))
        assert [result.skipped for result in sent] == [None, None, None]
        for user in users:
            assert [m["subject"] for m in await _sent(mail_api, user)] == [
                "Welcome to Shopweave, Ada Lovelace"
            ]
    finally:
        await small.dispose()
