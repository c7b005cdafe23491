"""An endpoint that keeps failing is disabled, and staff are told.

Each delivery given up (all its attempts failed, or refused for good) counts against its
endpoint while it is enabled (one given up because staff disabled it does not); a
delivered one ends the count. Once ``WEBHOOK_DISABLE_AFTER_FAILURES``
deliveries in a row have failed and the first of them failed at least
``WEBHOOK_DISABLE_AFTER_SECONDS`` ago, the endpoint is disabled with the reason and the
time, and ``webhook_endpoint.disabled`` is published for the staff alert email, all in
the give-up's transaction. The count rides on the delivery's own ``pending → failed``
change, so a repeated give-up (an activity retried after its commit) counts nothing, and
the disabling is a conditional update, so concurrent give-ups disable (and alert) once.
Both rules together, as Svix and Stripe do: a burst of failures during a short outage
does not disable an endpoint, and neither does one failure a week.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from models.base import utcnow
from services.webhooks.repository import WebhookEndpointRepository

log = logging.getLogger(__name__)


class EndpointHealth:
    def __init__(self, settings: Settings) -> None:
        self._failures = settings.webhook_disable_after_failures
        self._period = timedelta(seconds=settings.webhook_disable_after_seconds)

    async def count_failure(self, session: AsyncSession, endpoint_id: str) -> bool:
        """Count a failed delivery; True if that disabled the endpoint."""
        now = utcnow()
        endpoints = WebhookEndpointRepository(session)
        row = await endpoints.count_failure(endpoint_id, now)
        if row is None or not row.enabled or row.consecutive_failures < self._failures:
            return False
        since = row.failing_since or now
        reason = (
            f"{row.consecutive_failures} consecutive failed deliveries since {since.isoformat()}"
        )
        disabled = await endpoints.disable_failing(
            endpoint_id,
            failures=self._failures,
            failing_before=now - self._period,
            at=now,
            reason=reason,
        )
        if not disabled:
            return False
        log.error("webhook endpoint disabled", extra={"endpoint_id": endpoint_id, "reason": reason})
        await publish(
            session,
            EventType.WEBHOOK_ENDPOINT_DISABLED,
            endpoint_id,
            {
                "endpointId": endpoint_id,
                "url": row.url,
                "description": row.description,
                "reason": reason,
                "consecutiveFailures": row.consecutive_failures,
                "failingSince": since.isoformat(),
                "disabledAt": now.isoformat(),
            },
        )
        return True
