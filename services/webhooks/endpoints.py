"""Staff manage webhook endpoints: validation of urls and event types, signing secrets."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta

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
    WebhookSecretRotation,
)
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.destinations import (
    DestinationPolicy,
    InvalidWebhookUrl,
    WebhookUrlNotAllowed,
    check_saved_url,
)
from services.webhooks.repository import WebhookEndpointRepository

__all__ = ["InvalidWebhookUrl", "WebhookUrlNotAllowed"]

SECRET_PREFIX = "whsec_"
# Standard Webhooks asks for 24 to 64 random bytes.
SECRET_BYTES = 32
# Internal plumbing (the relay's own probe; the staff alert about a disabled endpoint,
# which names another endpoint's url), never sent out.
INTERNAL_TYPES = frozenset({EventType.RELAY_PROBE, EventType.WEBHOOK_ENDPOINT_DISABLED})
SUBSCRIBABLE = tuple(sorted(str(t) for t in EventType if t not in INTERNAL_TYPES))
STAFF_DISABLED = "disabled by staff"


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    title = "No such webhook endpoint"


class UnknownEventType(ValidationFailed):
    code = "unknown_event_type"
    title = "No such event type"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret: its bytes."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


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
    def __init__(
        self, session: AsyncSession, destinations: DestinationPolicy = DestinationPolicy()
    ) -> None:
        self._endpoints = WebhookEndpointRepository(session)
        self._deliveries = WebhookDeliveryRepository(session)
        self._destinations = destinations

    async def create(self, body: WebhookEndpointCreate) -> WebhookEndpointWithSecret:
        row = await self._endpoints.add(
            WebhookEndpoint(
                url=await check_saved_url(body.url, self._destinations),
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
            row.url = await check_saved_url(body.url, self._destinations)
        if body.event_types is not None:
            row.event_types = checked_types(body.event_types)
        if body.description is not None:
            row.description = body.description
        if body.enabled is True and not row.enabled:
            # A fresh start: the failures that disabled it are forgotten. An endpoint
            # already enabled keeps its run of failures: a client sending the whole
            # endpoint back (``enabled: true`` with a new description) must not reset the
            # count that disables an endpoint failing for days.
            row.enabled = True
            row.disabled_at = row.disabled_reason = row.failing_since = None
            row.consecutive_failures = 0
        elif body.enabled is False and row.enabled:
            row.enabled = False
            row.disabled_at = utcnow()
            row.disabled_reason = STAFF_DISABLED
        row.updated_at = utcnow()
        return WebhookEndpointPublic.of(await self._endpoints.save(row))

    async def delete(self, endpoint_id: str) -> None:
        """The endpoint and its deliveries (one in flight is dropped: its sender finds
        nothing to record). Its deliveries' rows are locked before its own, in the order
        the sender takes them (a delivery, then the endpoint's run of failures): the
        endpoint's first, a give-up under way deadlocked with the cascade, and the
        ``DELETE`` answered 500."""
        await self._deliveries.lock_all_of(endpoint_id)
        await self._endpoints.delete(await self._row(endpoint_id, for_update=True))

    async def rotate_secret(
        self, endpoint_id: str, body: WebhookSecretRotation
    ) -> WebhookEndpointWithSecret:
        """A new secret; the replaced one keeps signing for ``expires_in_seconds`` (one
        predecessor at most: rotating again drops the older one at once)."""
        row = await self._row(endpoint_id, for_update=True)
        now = utcnow()
        if body.expires_in_seconds > 0:
            row.previous_secret = row.secret
            row.previous_secret_expires_at = now + timedelta(seconds=body.expires_in_seconds)
        else:
            row.previous_secret = row.previous_secret_expires_at = None
        row.secret = new_secret()
        row.updated_at = now
        return WebhookEndpointWithSecret.revealing(await self._endpoints.save(row))

    async def _row(self, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
        row = await self._endpoints.get(endpoint_id, for_update=for_update)
        if row is None:
            raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}")
        return row
