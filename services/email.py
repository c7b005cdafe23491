"""Sending an email exactly once per idempotency key.

The ``email_messages`` ledger records each message before it is handed to the provider.
A retried activity finds the row: ``sent`` means done; ``sending`` means an earlier
attempt's outcome is unknown (its answer may have been lost after the provider took the
message), so the provider is asked whether it has the message before sending again.
The provider's activity feed lags (SendGrid's by minutes): it is asked only once the
last attempt is older than that lag (``EMAIL_ACTIVITY_LAG_SECONDS``); until then the
attempt fails with ``email_outcome_pending`` and is retried when the lag ends.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, locked, transaction
from core.errors import DependencyUnavailable, ShopError
from core.ids import IdPrefix, new_id
from integrations.email.sender import EmailRejected, EmailSender, OutgoingEmail
from integrations.email.templates import EmailTemplates
from models.base import utcnow
from models.email import EmailMessage, EmailStatus

log = logging.getLogger(__name__)
MESSAGE_KEY_ARG = "message_key"


class EmailOutcomePending(DependencyUnavailable):
    """An earlier attempt's outcome is unknown and too recent for the provider's
    activity feed to show it: retried later, never sent twice meanwhile."""

    code = "email_outcome_pending"
    title = "The last attempt's outcome is not known yet"


@dataclass(frozen=True)
class DeliveryResult:
    message_id: str
    provider_message_id: str | None
    already_sent: bool


# The subject kept of a message to an erased account (its own may have named them).
ERASED_SUBJECT = "(erased with the account)"


class EmailMessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, *, key: str, template: str, to: str, subject: str) -> EmailMessage:
        """The ledger row for ``key``, created if new, locked for this transaction."""
        await self.session.exec(
            insert(EmailMessage)
            .values(
                id=new_id(IdPrefix.MESSAGE),
                idempotency_key=key,
                template=template,
                to_email=to,
                subject=subject,
                status=EmailStatus.PENDING,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
        result = await self.session.exec(
            locked(select(EmailMessage).where(EmailMessage.idempotency_key == key))
        )
        return result.one()

    async def erase_recipient(self, email: str, replacement: str) -> int:
        """Messages to ``email`` (an erased account's) keep their key, template and
        status (a retried send still finds them sent) but no longer its address, nor a
        subject that may name the person. How many."""
        result = await self.session.exec(
            update(EmailMessage)
            .where(col(EmailMessage.to_email) == email)
            .values(to_email=replacement, subject=ERASED_SUBJECT)
        )
        return int(result.rowcount)

    async def get(self, message_id: str) -> EmailMessage:
        row = await self.session.get(EmailMessage, message_id)
        assert row is not None
        return row

    def save(self, row: EmailMessage) -> None:
        self.session.add(row)


class EmailService:
    def __init__(
        self,
        sessions: SessionFactory,
        sender: EmailSender,
        templates: EmailTemplates,
        from_address: str,
        activity_lag: timedelta = timedelta(0),
    ) -> None:
        """``activity_lag``: how long after a send the provider's activity feed can be
        trusted to show it (``Settings.resolved_email_activity_lag``)."""
        self.sessions = sessions
        self.sender = sender
        self.templates = templates
        self.from_address = from_address
        self.activity_lag = activity_lag

    async def deliver(
        self, *, key: str, template: str, to: str, context: dict[str, Any]
    ) -> DeliveryResult:
        rendered = self.templates.render(template, context)
        async with transaction(self.sessions) as session:
            messages = EmailMessageRepository(session)
            row = await messages.claim(key=key, template=template, to=to, subject=rendered.subject)
            if row.status == EmailStatus.SENT:
                return DeliveryResult(row.id, row.provider_message_id, already_sent=True)
            outcome_unknown = row.status == EmailStatus.SENDING
            last_attempt = row.attempted_at
            row.status = EmailStatus.SENDING
            row.attempts += 1
            if not outcome_unknown:
                row.attempted_at = utcnow()
            messages.save(row)
            message_id = row.id

        if outcome_unknown:
            self._wait_for_the_feed(last_attempt)
            found = await self.sender.find_accepted(MESSAGE_KEY_ARG, message_id)
            if found is not None:
                log.info("earlier attempt had been accepted", extra={"key": key})
                await self._mark_sent(message_id, found)
                return DeliveryResult(message_id, found, already_sent=True)
            await self._stamp_attempt(message_id)

        try:
            provider_id = await self.sender.send(
                OutgoingEmail(
                    to=to,
                    from_=self.from_address,
                    subject=rendered.subject,
                    html=rendered.html,
                    text=rendered.text,
                    custom_args={MESSAGE_KEY_ARG: message_id, "template": template},
                    categories=(template,),
                )
            )
        except ShopError as exc:
            await self._record_error(message_id, exc, rejected=isinstance(exc, EmailRejected))
            raise
        await self._mark_sent(message_id, provider_id)
        return DeliveryResult(message_id, provider_id, already_sent=False)

    def _wait_for_the_feed(self, last_attempt: datetime | None) -> None:
        """Raise ``EmailOutcomePending`` while the last attempt is too recent for the
        provider's activity feed to show it (asking it then proves nothing, and the
        feed's API is rate limited: SendGrid allows 6 requests a minute)."""
        if last_attempt is None:
            return
        wait = last_attempt + self.activity_lag - utcnow()
        if wait > timedelta(0):
            seconds = math.ceil(wait.total_seconds())
            raise EmailOutcomePending(
                f"the last attempt's outcome is unknown and the provider's activity feed "
                f"may not show it for {seconds} s more; retried then",
                retry_after=seconds,
            )

    async def _stamp_attempt(self, message_id: str) -> None:
        """The feed does not show the earlier attempt: this one is handed over now."""
        async with transaction(self.sessions) as session:
            messages = EmailMessageRepository(session)
            row = await messages.get(message_id)
            row.attempted_at = utcnow()
            messages.save(row)

    async def _mark_sent(self, message_id: str, provider_id: str | None) -> None:
        async with transaction(self.sessions) as session:
            messages = EmailMessageRepository(session)
            row = await messages.get(message_id)
            row.status = EmailStatus.SENT
            row.provider_message_id = provider_id or None
            row.sent_at = utcnow()
            row.last_error = None
            messages.save(row)

    async def _record_error(self, message_id: str, exc: ShopError, *, rejected: bool) -> None:
        async with transaction(self.sessions) as session:
            messages = EmailMessageRepository(session)
            row = await messages.get(message_id)
            row.last_error = exc.detail[:2000]
            if rejected:
                # The provider surely did not take it: nothing is in doubt.
                row.status = EmailStatus.PENDING
            messages.save(row)
