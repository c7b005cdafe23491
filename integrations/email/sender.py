"""Sending email through SendGrid's v3 API with the real ``sendgrid`` SDK.

The same code talks to SendGrid or to our sandbox: only the base URL and key differ.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, Protocol, TypeVar
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, Content, CustomArg, Email, Mail, To

from core.errors import ShopError
from core.telemetry import Tracing
from integrations.sdk_tracing import trace_sendgrid

log = logging.getLogger(__name__)

T = TypeVar("T")
SANDBOX_API_KEY = "SG.sandbox.local-development-key"
# What SendGrid answers the Email Activity API of an account without that add-on.
NO_ACTIVITY_FEED = (401, 403, 404)


class EmailRejected(ShopError):
    """The provider refused the message itself (400): retrying cannot help."""

    code = "email_rejected"
    title = "The email provider rejected the message"


class EmailProviderUnavailable(ShopError):
    """Network errors, rate limits, 5xx, auth problems: worth retrying later."""

    status = 503
    code = "email_provider_unavailable"
    title = "The email provider is unavailable"
    retryable = True


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    from_: str
    subject: str
    html: str
    text: str
    # Sent as SendGrid custom_args; ``message_key`` identifies the message for lookups.
    custom_args: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()


class EmailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> str:
        """Hand the message to the provider; returns its message id."""
        ...

    async def find_accepted(self, arg: str, value: str) -> str | None:
        """The provider's id of a message it already accepted with custom arg
        ``arg == value``, or None. Used to learn the outcome of a send whose answer
        was lost, so that it is not sent twice."""
        ...


class SendGridSender:
    def __init__(
        self,
        api_key: str,
        base_url: str,
        timeout_seconds: float = 10.0,
        tracing: Tracing | None = None,
    ) -> None:
        self._client = SendGridAPIClient(api_key=api_key, host=base_url)
        # The SDK waits forever by default; a hung provider must fail the attempt.
        self._client.client.timeout = timeout_seconds
        trace_sendgrid(self._client, tracing)  # with an exporter: a span per call
        self.base_url = base_url

    async def send(self, email: OutgoingEmail) -> str:
        name, address = parseaddr(email.from_)
        mail = Mail(
            from_email=Email(address, name or None),
            to_emails=To(email.to),
            subject=email.subject,
        )
        mail.add_content(Content("text/plain", email.text))
        mail.add_content(Content("text/html", email.html))
        for key, value in email.custom_args.items():
            mail.add_custom_arg(CustomArg(key, value))
        for category in email.categories:
            mail.add_category(Category(category))
        response: Any = await self._call(lambda: self._client.send(mail))
        headers = {k.lower(): v for k, v in dict(response.headers).items()}
        return str(headers.get("x-message-id", ""))

    async def find_accepted(self, arg: str, value: str) -> str | None:
        query = f"unique_args['{arg}']=\"{value}\""

        def lookup() -> Any:
            try:
                return self._client.client.messages.get(query_params={"query": query, "limit": 1})
            except HTTPError as err:
                if int(getattr(err, "status_code", 0) or 0) in NO_ACTIVITY_FEED:
                    return None
                raise

        # Only an account without the feed is an answer ("cannot know"); a feed that is
        # down, slow or failing is retried like a send: the earlier attempt may yet land
        # (a request queued while the provider restarts), and sending again then doubles
        # it. Before, any failure here meant "send again": a chaos run got one refund
        # email three times while the sandbox's API process was being replaced.
        response: Any = await self._call(lookup)
        if response is None:
            log.warning("cannot look up earlier sends: no Email Activity feed on this account")
            return None
        messages = json.loads(response.body or b"{}").get("messages", [])
        return str(messages[0]["msg_id"]) if messages else None

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except HTTPError as err:
            status = int(getattr(err, "status_code", 0) or 0)
            body = getattr(err, "body", b"") or b""
            detail = body.decode(errors="replace")[:500] if isinstance(body, bytes) else str(body)
            if status == 400:
                raise EmailRejected(f"SendGrid refused the message: {detail}") from err
            raise EmailProviderUnavailable(f"SendGrid answered {status}: {detail}") from err
        except (URLError, OSError, TimeoutError) as err:
            raise EmailProviderUnavailable(f"SendGrid is unreachable: {err}") from err
