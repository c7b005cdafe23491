"""Email activities: thin over ``services.email``; idempotent by the message key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.common import RetryPolicy

from core.db import SessionFactory, holders
from services.email import EmailService
from services.email_recipients import held_recipient, reads_recipient
from services.payments.service import unrefunded
from temporal.errors import application_errors

# How workflows send a notification (a reminder, an order email): retried for up to six
# hours; a message the provider refuses outright is not retried.
NOTIFICATION_START_TO_CLOSE = timedelta(seconds=30)
NOTIFICATION_SCHEDULE_TO_CLOSE = timedelta(hours=6)
NOTIFICATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["email_rejected"],
)


class SendEmailInput(BaseModel):
    idempotency_key: str
    template: str
    to: str
    context: dict[str, Any]
    # The account the email is for (welcome, cart reminder): its address and name are
    # read when the email is sent, and an erased account is not written to. None in
    # inputs scheduled before it existed: those go to ``to``.
    user_id: str | None = None


class SendEmailResult(BaseModel):
    message_id: str | None
    provider_message_id: str | None
    already_sent: bool
    # Why nothing was sent: "account_closed" for an email to an account erased before it
    # went (an order's, while the order ran; a welcome or reminder, while it was retried).
    skipped: str | None = None


# Emails that tell what became of an order's money, read when sent (after the undo's
# refund): a refund that failed at Stripe is told as failed, not "being refunded".
REFUND_TOLD = frozenset({"order_cancelled"})


class EmailActivities:
    def __init__(self, emails: EmailService, sessions: SessionFactory | None = None) -> None:
        self._emails = emails
        self._sessions = sessions

    @activity.defn(name="email.send")
    async def send_email(self, input: SendEmailInput) -> SendEmailResult:
        """Idempotent by ``idempotency_key``. An order's email to its customer goes to
        the order's address and name as they are now, not the workflow's snapshot; an
        account's (``user_id``) to the account's; to nobody once the account is erased
        (the account is held until the provider has the message: an erasure waits)."""
        order_id = str(input.context["order_id"]) if input.context.get("order_id") else None
        if self._sessions is None or not reads_recipient(input.template, order_id, input.user_id):
            return await self._deliver(input, input.to, input.context, order_id)
        async with (
            holders(self._sessions),
            held_recipient(self._sessions, input.template, order_id, input.user_id) as recipient,
        ):
            if recipient is None:
                activity.logger.info(
                    "no %s for %s: account closed", input.template, order_id or input.user_id
                )
                return SendEmailResult(
                    message_id=None,
                    provider_message_id=None,
                    already_sent=False,
                    skipped="account_closed",
                )
            context = input.context | {"name": recipient.name}
            if "email" in context:  # the welcome names the address it is for
                context = context | {"email": recipient.email}
            return await self._deliver(input, recipient.email, context, order_id)

    async def _deliver(
        self, input: SendEmailInput, to: str, context: dict[str, Any], order_id: str | None
    ) -> SendEmailResult:
        if input.template in REFUND_TOLD and order_id and self._sessions is not None:
            left = await unrefunded(self._sessions, order_id)
            context = context | {"unrefunded": left}
        with application_errors():
            result = await self._emails.deliver(
                key=input.idempotency_key,
                template=input.template,
                to=to,
                context=context,
            )
        return SendEmailResult(
            message_id=result.message_id,
            provider_message_id=result.provider_message_id,
            already_sent=result.already_sent,
        )
