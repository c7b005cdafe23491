"""Sending one webhook delivery once: what ``webhooks.send`` and ``webhooks.give_up`` do.

``send`` reads the delivery and its endpoint, POSTs the frozen payload signed with the
endpoint's current secret, and records the attempt (status code, error, duration) in one
transaction with the delivery's count and, on a 2xx, its ``delivered`` status. Then a
2xx returns; a 4xx other than 408/429 (or a disabled endpoint) raises a permanent error;
anything else (5xx, 408, 429, timeout, connection error) raises a retryable one. A crash
between the endpoint's answer and the commit repeats the send with the same
``webhook-id``, which is what receivers deduplicate on.
"""

from __future__ import annotations

import logging
import time

import httpx

from core.db import SessionFactory, autocommit, transaction
from core.errors import ShopError
from core.settings import Settings
from models.webhook_deliveries import WebhookStatus
from services.webhooks.delivery_repository import AttemptRecord, WebhookDeliveryRepository
from services.webhooks.signing import body_of, signed_headers
from workflows.types.webhooks import SendOutcome

log = logging.getLogger(__name__)

# Statuses of 4xx that are worth retrying (Standard Webhooks and common practice).
RETRYABLE_4XX = frozenset({408, 429})
# The start of a response body kept in the attempt's error.
ERROR_BODY_CHARS = 200


def webhook_client(settings: Settings) -> httpx.AsyncClient:
    """A worker's one client for webhook endpoints: no redirects followed (a 3xx is a
    failure to fix at the endpoint), the configured timeout for each request."""
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        headers={"user-agent": "Shopweave-Webhooks/1"},
    )


class WebhookSendFailed(ShopError):
    """A failure worth retrying: 5xx, 408, 429, a timeout, no connection, the delivery not
    yet visible (its relay transaction has not committed)."""

    code = "webhook_send_failed"
    title = "The webhook was not accepted; retrying"
    retryable = True


class WebhookRejected(ShopError):
    """A permanent failure: the endpoint answered 4xx (not 408/429) or is disabled."""

    code = "webhook_rejected"
    title = "The webhook endpoint refused the delivery"


class WebhookSender:
    def __init__(self, sessions: SessionFactory, http: httpx.AsyncClient) -> None:
        self._sessions = sessions
        self._http = http

    async def send(self, event_id: str, endpoint_id: str, generation: int) -> SendOutcome:
        async with autocommit(self._sessions) as session:
            deliveries = WebhookDeliveryRepository(session)
            found = await deliveries.target(event_id, endpoint_id)
            if found is None and not await deliveries.endpoint_exists(endpoint_id):
                return SendOutcome.SKIPPED  # the endpoint (and its deliveries) was deleted
        if found is None:
            raise WebhookSendFailed(f"no delivery of {event_id} to {endpoint_id} yet")
        delivery, endpoint = found
        if delivery.status != WebhookStatus.PENDING or delivery.generation != generation:
            return SendOutcome.SKIPPED
        if not endpoint.enabled:
            raise WebhookRejected("the endpoint is disabled")
        body = body_of(delivery.payload)
        headers = signed_headers(delivery.id, int(time.time()), body, endpoint.secret)
        started = time.monotonic()
        status_code: int | None = None
        try:
            response = await self._http.post(endpoint.url, content=body, headers=headers)
            status_code = response.status_code
            error = (
                None
                if response.is_success
                else f"HTTP {status_code}: {response.text[:ERROR_BODY_CHARS]}".strip()
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        succeeded = status_code is not None and 200 <= status_code < 300
        attempt = AttemptRecord(
            generation=generation,
            succeeded=succeeded,
            status_code=status_code,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        async with transaction(self._sessions) as session:
            recorded = await WebhookDeliveryRepository(session).record_attempt(delivery, attempt)
        if not recorded:
            return SendOutcome.SKIPPED  # retried (or finished) by another run meanwhile
        if succeeded:
            return SendOutcome.DELIVERED
        log.warning(
            "webhook attempt failed",
            extra={"delivery_id": delivery.id, "endpoint_id": endpoint_id, "error": error},
        )
        if (
            status_code is not None
            and 400 <= status_code < 500
            and status_code not in RETRYABLE_4XX
        ):
            raise WebhookRejected(error, status_code=status_code)
        raise WebhookSendFailed(error, status_code=status_code)

    async def give_up(self, event_id: str, endpoint_id: str, generation: int, error: str) -> bool:
        """The delivery is failed with its last error (if still pending in ``generation``)."""
        async with transaction(self._sessions) as session:
            failed = await WebhookDeliveryRepository(session).fail(
                event_id, endpoint_id, generation, error
            )
        if failed:
            log.error(
                "webhook delivery failed",
                extra={"event_id": event_id, "endpoint_id": endpoint_id, "error": error},
            )
        return failed
