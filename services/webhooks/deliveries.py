"""Operators' view of webhook deliveries: an endpoint's deliveries, and a failed (or
skipped) one's retry."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound
from models.base import Page
from models.webhook_deliveries import (
    WebhookDelivery,
    WebhookDeliveryPublic,
    WebhookRetriedFailed,
    WebhookStatus,
)
from models.webhooks import WebhookEndpointPublic
from models.workflow_starts import WorkflowStart
from services.webhooks.delivery_repository import RECOVERABLE, WebhookDeliveryRepository
from services.webhooks.endpoints import WebhookEndpointService
from temporal.clients.webhooks import WebhookWorkflows


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    title = "No such webhook delivery"


class WebhookDeliveryNotFailed(Conflict):
    code = "webhook_delivery_not_failed"
    title = "Only a failed or skipped delivery can be retried"


class WebhookEndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"
    title = "The webhook endpoint is disabled: re-enable it first"


# Failed deliveries one ``retry-failed`` call sends again (call again while ``more``).
RETRY_FAILED_LIMIT = 100


class WebhookDeliveryAdmin:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._deliveries = WebhookDeliveryRepository(session)

    async def page(
        self, endpoint_id: str, *, status: WebhookStatus | None, page: int, limit: int
    ) -> Page[WebhookDeliveryPublic]:
        await WebhookEndpointService(self._session).get(endpoint_id)  # 404 if unknown
        rows, total = await self._deliveries.page(
            endpoint_id, status=status, offset=(page - 1) * limit, limit=limit
        )
        return Page(
            items=[WebhookDeliveryPublic.of(d, a) for d, a in rows],
            total=total,
            page=page,
            limit=limit,
        )

    async def retry(
        self, delivery_id: str, workflows: WebhookWorkflows
    ) -> tuple[WebhookDeliveryPublic, WorkflowStart]:
        """The failed (or skipped) delivery back to pending in a new generation, its
        workflow's start recorded (the caller starts it after the commit). Same
        ``webhook-id``: the receiver deduplicates a send it had already taken. Not while
        its endpoint is disabled: the send would be refused at once (a disabled endpoint
        gets nothing) and the delivery failed again."""
        delivery = await self._deliveries.get(delivery_id)
        if delivery is None:
            raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id}")
        if delivery.status not in RECOVERABLE:
            raise WebhookDeliveryNotFailed(
                f"Delivery {delivery_id} is {delivery.status}", status=delivery.status
            )
        _enabled(await WebhookEndpointService(self._session).get(delivery.endpoint_id))
        delivery = await self._deliveries.send_again(delivery)
        start = self._start(delivery, workflows)
        attempts = await self._deliveries.attempts_of(delivery.id)
        return WebhookDeliveryPublic.of(delivery, attempts), start

    async def retry_failed(
        self, endpoint_id: str, workflows: WebhookWorkflows, *, limit: int = RETRY_FAILED_LIMIT
    ) -> tuple[WebhookRetriedFailed, list[WorkflowStart]]:
        """Each failed or skipped delivery of the endpoint (the oldest ``limit``) retried
        as ``retry`` does, their starts recorded (the caller starts them after the commit);
        ``more`` when some are left for another call. What an endpoint back from an outage
        wants, once re-enabled: its failed deliveries and the events raised while it was
        disabled, not one call each. Each is sent once: its row is locked and pending
        after this, so a concurrent or repeated call leaves it alone."""
        _enabled(await WebhookEndpointService(self._session).get(endpoint_id))  # 404 too
        taken = await self._deliveries.recoverable_of(endpoint_id, limit=limit + 1)
        starts = [
            self._start(await self._deliveries.send_again(delivery), workflows)
            for delivery in taken[:limit]
        ]
        return WebhookRetriedFailed(retried=len(starts), more=len(taken) > limit), starts

    def _start(self, delivery: WebhookDelivery, workflows: WebhookWorkflows) -> WorkflowStart:
        return WebhookWorkflows.request_start(
            self._session,
            workflows.input(delivery.event_id, delivery.endpoint_id, delivery.generation),
        )


def _enabled(endpoint: WebhookEndpointPublic) -> None:
    """A disabled endpoint gets nothing, a retry neither: it would fail again at once."""
    if not endpoint.enabled:
        raise WebhookEndpointDisabled(
            f"Endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}): re-enable it, "
            "then retry its deliveries",
            endpointId=endpoint.id,
            disabledReason=endpoint.disabled_reason,
        )
