"""``webhooks``: every event an enabled webhook endpoint wants becomes one delivery per
such endpoint, each sent by its own ``WebhookDeliveryWorkflow``; a disabled endpoint
wanting it gets a ``skipped`` one, not sent, for staff to recover. And
``webhook_disabled_alert``: staff are emailed when an endpoint was disabled for failing.

The deliveries and their workflow starts are written in the relay's delivery
transaction, so the relay's receipt makes this happen once per event; each delivery's
workflow then retries on its own, so one slow or failing endpoint never holds back this
subscriber's line (the next events of the aggregate) or another endpoint. A workflow is
started before that transaction commits: one started by an attempt that did not commit
finds no delivery and gives up, and the attempt that commits starts a new run under the
same id (a closed run does not count for a delivery new in its transaction).
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.settings import Settings
from models.webhook_deliveries import SKIPPED_ENDPOINT_DISABLED
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from services.users import PERSONAL_KEYS, UserRepository, without_person
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import INTERNAL_TYPES
from services.webhooks.signing import envelope
from temporal.clients.webhooks import WebhookWorkflows

NAME = "webhooks"
EVENT_TYPES = frozenset(t for t in EventType if t not in INTERNAL_TYPES)
DISABLED_TEMPLATE = "webhook_endpoint_disabled"


def webhooks_subscriber(workflows: WebhookWorkflows) -> Subscriber:
    async def record_deliveries(event: DomainEvent, session: AsyncSession) -> None:
        deliveries = WebhookDeliveryRepository(session)
        if event.type is EventType.USER_DELETED:
            await erase_person(deliveries, str(event.data.get("userId") or event.aggregate_id))
        payload = envelope(str(event.type), event.created_at, await as_sent(session, event))
        for endpoint in await deliveries.endpoints_wanting(str(event.type)):
            if not endpoint.enabled:
                # Not sent, but kept: staff recover it once the endpoint is enabled again.
                await deliveries.add_once(
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type=str(event.type),
                    payload=payload,
                    skipped_because=SKIPPED_ENDPOINT_DISABLED,
                )
                continue
            fresh = await deliveries.add_once(
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type=str(event.type),
                payload=payload,
            )
            # A row new in this transaction: a closed run with its workflow's id came
            # from an attempt that did not commit, and sent nothing (no row to send).
            await workflows.start_in(
                session, workflows.input(event.id, endpoint.id, 0), fresh=fresh
            )

    return Subscriber(NAME, EVENT_TYPES, record_deliveries)


async def as_sent(session: AsyncSession, event: DomainEvent) -> dict[str, Any]:
    """The event's data, without the person's email and name if their account was erased
    since it was written (``user.created``, ``shipment.shipped``, ``order.delivered``
    handled after the deletion's own erasure below)."""
    data = event.data
    user_id = data.get("userId")
    if not user_id or not any(k in data for k in PERSONAL_KEYS):
        return data
    return without_person(data) if await UserRepository(session).erased(str(user_id)) else data


async def erase_person(deliveries: WebhookDeliveryRepository, user_id: str) -> None:
    """``user.deleted``: the payloads kept for redelivery (an operator's retry, a
    delivery still retrying) no longer carry the person's email and name. After this
    subscriber's own ``user.created`` (ordered per aggregate); the order's events are
    covered by ``as_sent``."""
    for delivery in await deliveries.about_user(user_id):
        data = delivery.payload.get("data")
        if isinstance(data, dict) and any(k in data for k in PERSONAL_KEYS):
            delivery.payload = delivery.payload | {"data": without_person(data)}
            deliveries.save(delivery)


def webhook_disabled_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email ``WEBHOOK_ALERT_EMAIL`` (else ``INVENTORY_ALERT_EMAIL``) that an endpoint was
    disabled, why, and where to re-enable it; once per disabling (the email ledger's key)."""
    name = "webhook_disabled_alert"

    async def email_staff(event: DomainEvent, session: AsyncSession) -> None:
        data = event.data
        endpoint_id = str(data["endpointId"])
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=DISABLED_TEMPLATE,
            to=settings.webhook_alert_email or settings.inventory_alert_email,
            context={
                "endpoint_id": endpoint_id,
                "url": str(data.get("url") or ""),
                "description": str(data.get("description") or ""),
                "reason": str(data.get("reason") or ""),
                "disabled_at": str(data.get("disabledAt") or ""),
                "staff_url": f"{settings.api_base_url}/api/admin/webhooks/{endpoint_id}",
            },
        )

    return Subscriber(name, frozenset({EventType.WEBHOOK_ENDPOINT_DISABLED}), email_staff)
