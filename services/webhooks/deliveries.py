"""Operators' view of webhook deliveries: an endpoint's deliveries, and a failed one's retry."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound
from models.base import Page
from models.webhook_deliveries import WebhookDeliveryPublic, WebhookStatus
from models.workflow_starts import WorkflowStart
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import WebhookEndpointService
from temporal.clients.webhooks import WebhookWorkflows


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    title = "No such webhook delivery"


class WebhookDeliveryNotFailed(Conflict):
    code = "webhook_delivery_not_failed"
    title = "Only a failed delivery can be retried"


class WebhookEndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"
    title = "The delivery's endpoint is disabled: re-enable it first"


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
        """The failed delivery back to pending in a new generation, its workflow's start
        recorded (the caller starts it after the commit). Same ``webhook-id``. Not while
        its endpoint is disabled: the send would be refused at once (a disabled endpoint
        gets nothing) and the delivery failed again."""
        delivery = await self._deliveries.get(delivery_id)
        if delivery is None:
            raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id}")
        if delivery.status != WebhookStatus.FAILED:
            raise WebhookDeliveryNotFailed(
                f"Delivery {delivery_id} is {delivery.status}", status=delivery.status
            )
        endpoint = await WebhookEndpointService(self._session).get(delivery.endpoint_id)
        if not endpoint.enabled:
            raise WebhookEndpointDisabled(
                f"Endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}): re-enable "
                "it, then retry the delivery",
                endpointId=endpoint.id,
                disabledReason=endpoint.disabled_reason,
            )
        delivery = await self._deliveries.send_again(delivery)
        start = WebhookWorkflows.request_start(
            self._session,
            workflows.input(delivery.event_id, delivery.endpoint_id, delivery.generation),
        )
        attempts = await self._deliveries.attempts_of(delivery.id)
        return WebhookDeliveryPublic.of(delivery, attempts), start
