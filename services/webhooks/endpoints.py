"""Staff manage webhook endpoints: validation of urls and event types, signing secrets."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound, ValidationFailed
from core.events import EventType
from models.base import Page, utcnow
from models.webhooks import (
    ALL_EVENTS,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointPublic,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from services.webhooks.repository import WebhookEndpointRepository

SECRET_PREFIX = "whsec_"
# Standard Webhooks asks for 24 to 64 random bytes.
SECRET_BYTES = 32
# Internal plumbing (the relay's own probe), never sent out.
INTERNAL_TYPES = frozenset({EventType.RELAY_PROBE})
SUBSCRIBABLE = tuple(sorted(str(t) for t in EventType if t not in INTERNAL_TYPES))
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    title = "No such webhook endpoint"


class InvalidWebhookUrl(ValidationFailed):
    code = "invalid_webhook_url"
    title = "The webhook url is not allowed"


class UnknownEventType(ValidationFailed):
    code = "unknown_event_type"
    title = "No such event type"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret: its bytes."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def checked_url(url: str) -> str:
    """``url`` if it is https, or http to localhost / 127.0.0.1 (development)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        raise InvalidWebhookUrl(f"{url!r} is not a url: {error}") from None
    if not host or parts.username or parts.password:
        raise InvalidWebhookUrl("The url needs a host and no user or password in it")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOCAL_HOSTS):
        return url.strip()
    raise InvalidWebhookUrl(
        "A webhook url must be https (http only to localhost or 127.0.0.1)", url=url
    )


def checked_types(types: list[str]) -> list[str]:
    """``["*"]``, or distinct known event types in the order given."""
    if ALL_EVENTS in types:
        if len(types) != 1:
            raise UnknownEventType('"*" takes every event type: send it alone')
        return [ALL_EVENTS]
    unknown = [t for t in types if t not in SUBSCRIBABLE]
    if unknown:
        raise UnknownEventType(
            f"Unknown event types: {', '.join(unknown)}", unknown=unknown, known=list(SUBSCRIBABLE)
        )
    return list(dict.fromkeys(types))


class WebhookEndpointService:
    def __init__(self, session: AsyncSession) -> None:
        self._endpoints = WebhookEndpointRepository(session)

    async def create(self, body: WebhookEndpointCreate) -> WebhookEndpointWithSecret:
        row = await self._endpoints.add(
            WebhookEndpoint(
                url=checked_url(body.url),
                event_types=checked_types(body.event_types),
                description=body.description,
                enabled=body.enabled,
                secret=new_secret(),
            )
        )
        return WebhookEndpointWithSecret.revealing(row)

    async def page(self, *, page: int, limit: int) -> Page[WebhookEndpointPublic]:
        rows, total = await self._endpoints.page(offset=(page - 1) * limit, limit=limit)
        return Page(
            items=[WebhookEndpointPublic.of(r) for r in rows], total=total, page=page, limit=limit
        )

    async def get(self, endpoint_id: str) -> WebhookEndpointPublic:
        return WebhookEndpointPublic.of(await self._row(endpoint_id))

    async def update(self, endpoint_id: str, body: WebhookEndpointUpdate) -> WebhookEndpointPublic:
        row = await self._row(endpoint_id, for_update=True)
        if body.url is not None:
            row.url = checked_url(body.url)
        if body.event_types is not None:
            row.event_types = checked_types(body.event_types)
        if body.description is not None:
            row.description = body.description
        if body.enabled is not None:
            row.enabled = body.enabled
        row.updated_at = utcnow()
        return WebhookEndpointPublic.of(await self._endpoints.save(row))

    async def delete(self, endpoint_id: str) -> None:
        await self._endpoints.delete(await self._row(endpoint_id, for_update=True))

    async def rotate_secret(self, endpoint_id: str) -> WebhookEndpointWithSecret:
        row = await self._row(endpoint_id, for_update=True)
        row.secret = new_secret()
        row.updated_at = utcnow()
        return WebhookEndpointWithSecret.revealing(await self._endpoints.save(row))

    async def _row(self, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
        row = await self._endpoints.get(endpoint_id, for_update=for_update)
        if row is None:
            raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}")
        return row
