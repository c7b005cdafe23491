"""Email activities: thin over ``services.email``; idempotent by the message key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import activity

from core.errors import ShopError
from services.email import EmailService
from temporal.errors import to_application_error


class SendEmailInput(BaseModel):
    idempotency_key: str
    template: str
    to: str
    context: dict[str, Any]


class SendEmailResult(BaseModel):
    message_id: str
    provider_message_id: str | None
    already_sent: bool


class EmailActivities:
    def __init__(self, emails: EmailService) -> None:
        self._emails = emails

    @activity.defn(name="email.send")
    async def send_email(self, input: SendEmailInput) -> SendEmailResult:
        try:
            result = await self._emails.deliver(
                key=input.idempotency_key,
                template=input.template,
                to=input.to,
                context=input.context,
            )
        except ShopError as exc:
            raise to_application_error(exc) from exc
        return SendEmailResult(
            message_id=result.message_id,
            provider_message_id=result.provider_message_id,
            already_sent=result.already_sent,
        )
