"""Sending one webhook delivery once: what ``webhooks.send`` and ``webhooks.give_up`` do.

``send`` reads the delivery and its endpoint, resolves and checks the url's host
(``destinations``: a blocked address is a permanent failure, recorded), POSTs the frozen
payload to the checked address signed with the endpoint's secret (and, during a
rotation's grace, its previous one), and records the attempt (status code, error,
duration) in one transaction with the delivery's count and, on a 2xx, its ``delivered``
status and the end of the endpoint's run of failures. Then a 2xx returns; a 4xx other
than 408/429, a blocked address or a disabled endpoint raises a permanent error; anything
else (5xx, 408, 429, timeout, connection error, a failed DNS lookup) raises a retryable
one. A crash between the endpoint's answer and the commit repeats the send with the same
``webhook-id``, which is what receivers deduplicate on. ``give_up`` fails the delivery and
counts it against the endpoint (``health``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from core.db import SessionFactory, autocommit, transaction
from core.errors import ShopError
from core.instrumentation import trace_httpx
from core.settings import Settings
from core.telemetry import Tracing
from models.base import utcnow
from models.webhook_deliveries import WebhookStatus
from models.webhooks import WebhookEndpoint
from services.webhooks.delivery_repository import AttemptRecord, WebhookDeliveryRepository
from services.webhooks.destinations import (
    DestinationBlocked,
    DestinationPolicy,
    DestinationUnresolved,
    pinned,
)
from services.webhooks.health import EndpointHealth
from services.webhooks.repository import WebhookEndpointRepository
from services.webhooks.signing import body_of, signed_headers
from workflows.types.webhooks import SendOutcome

log = logging.getLogger(__name__)

# Statuses of 4xx that are worth retrying (Standard Webhooks and common practice).
RETRYABLE_4XX = frozenset({408, 429})
# The start of a response body kept in the attempt's error, and the most bytes read for
# it: an endpoint may answer a huge (or endless) body, which is never read whole.
ERROR_BODY_CHARS = 200
ERROR_BODY_BYTES = 4 * ERROR_BODY_CHARS


def webhook_client(
    settings: Settings,
    tracing: Tracing | None = None,
    *,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """A worker's one client for webhook endpoints: no redirects followed (a 3xx is a
    failure to fix at the endpoint), the configured timeout for each phase of a request
    (``WebhookSender`` bounds the whole), answers asked uncompressed, and no
    connection kept for another request: each send connects to the address it has just
    checked, and a pooled connection (keyed by that address) could otherwise carry a
    request for another host name sharing the address over a TLS session verified for
    the first. ``verify``: the CA bundle (tests trust their own certificate). With
    ``tracing`` that exports, a span per request (and its ``traceparent`` header)."""
    client = httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        headers={"user-agent": "Shopweave-Webhooks/1", "accept-encoding": "identity"},
        limits=httpx.Limits(max_keepalive_connections=0),
        verify=verify,
    )
    trace_httpx(client, tracing)
    return client


class WebhookSendFailed(ShopError):
    """A failure worth retrying: 5xx, 408, 429, a timeout, no connection, the delivery not
    yet visible (its relay transaction has not committed)."""

    code = "webhook_send_failed"
    title = "The webhook was not accepted; retrying"
    retryable = True


class WebhookRejected(ShopError):
    """A permanent failure: the endpoint answered 4xx (not 408/429), its url reaches an
    address webhooks may not go to, or it is disabled."""

    code = "webhook_rejected"
    title = "The webhook endpoint refused the delivery"


class WebhookSender:
    def __init__(
        self,
        sessions: SessionFactory,
        http: httpx.AsyncClient,
        settings: Settings,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._destinations = DestinationPolicy.of(settings)
        self._health = EndpointHealth(settings)
        self._timeout = settings.webhook_timeout_seconds

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
        headers = signed_headers(delivery.id, int(time.time()), body, signing_secrets(endpoint))
        started = time.monotonic()
        answer = await self._post(endpoint.url, body, headers)
        attempt = AttemptRecord(
            generation=generation,
            succeeded=answer.succeeded,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        async with transaction(self._sessions) as session:
            recorded = await WebhookDeliveryRepository(session).record_attempt(delivery, attempt)
            if recorded and answer.succeeded:
                await WebhookEndpointRepository(session).clear_failures(endpoint_id)
        if not recorded:
            return SendOutcome.SKIPPED  # retried (or finished) by another run meanwhile
        if answer.succeeded:
            return SendOutcome.DELIVERED
        log.warning(
            "webhook attempt failed",
            extra={"delivery_id": delivery.id, "endpoint_id": endpoint_id, "error": answer.error},
        )
        if answer.permanent:
            raise WebhookRejected(answer.error, status_code=answer.status_code)
        raise WebhookSendFailed(answer.error, status_code=answer.status_code)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST to the address ``url`` resolves to now, once it is checked, within
        WEBHOOK_TIMEOUT_SECONDS in all: the client's timeout bounds each read, so an
        endpoint trickling its answer a byte at a time would otherwise hold the attempt
        until the activity's timeout, unrecorded."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post_checked(url, body, headers)
        except TimeoutError:
            return Answer(None, f"timeout: no answer within {self._timeout:g} s")

    async def _post_checked(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            targets = await pinned(url, self._destinations)
        except DestinationBlocked as blocked:
            return Answer(None, f"blocked: {blocked}", permanent=True)
        except DestinationUnresolved as unresolved:
            return Answer(None, f"DNS: {unresolved}")
        for target in targets:
            try:
                async with self._http.stream(
                    "POST",
                    target.url,
                    content=body,
                    headers=headers | target.headers,
                    extensions=target.extensions,
                ) as response:
                    return await _answer(response)
            except httpx.ConnectError as exc:
                failure = exc  # the host's next address, if it has one
            except httpx.HTTPError as exc:
                return Answer(None, f"{type(exc).__name__}: {exc}"[:500])
        return Answer(None, f"{type(failure).__name__}: {failure}"[:500])

    async def give_up(self, event_id: str, endpoint_id: str, generation: int, error: str) -> bool:
        """The delivery is failed with its last error (if still pending in ``generation``),
        counted against its endpoint in the same transaction (which may disable it): a
        repeated give-up finds nothing pending and counts nothing."""
        async with transaction(self._sessions) as session:
            failed = await WebhookDeliveryRepository(session).fail(
                event_id, endpoint_id, generation, error
            )
            if failed:
                await self._health.count_failure(session, endpoint_id)
        if failed:
            log.error(
                "webhook delivery failed",
                extra={"event_id": event_id, "endpoint_id": endpoint_id, "error": error},
            )
        return failed


@dataclass(frozen=True)
class Answer:
    """How one POST went: the status code (None: no answer), the error, and whether it
    is a permanent refusal (a 4xx other than 408/429, or a blocked destination)."""

    status_code: int | None
    error: str | None
    permanent: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _answer(response: httpx.Response) -> Answer:
    """How the endpoint answered, from its status and (for a failure) the start of its
    body: a success's body is not read, a failure's only up to ERROR_BODY_BYTES."""
    code = response.status_code
    if response.is_success:
        return Answer(code, None)
    kept = b""
    try:
        async for chunk in response.aiter_bytes():
            kept += chunk
            if len(kept) >= ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass  # the status is the answer; the body is only its explanation
    text = kept[:ERROR_BODY_BYTES].decode(response.encoding or "utf-8", errors="replace")
    error = f"HTTP {code}: {text[:ERROR_BODY_CHARS]}".strip()
    return Answer(code, error, permanent=400 <= code < 500 and code not in RETRYABLE_4XX)


def signing_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The endpoint's secret, and the one its last rotation replaced while that is valid."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > utcnow():
        secrets.append(endpoint.previous_secret)
    return secrets
