"""How the sandboxes send their webhooks: in the background, after the change committed,
each retried a few times with backoff (on 5xx, 404, 429 and connection errors), as the
providers do. What still fails is logged; the sandbox's state stands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import httpx

log = logging.getLogger(__name__)

ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.5
# 404: the receiving endpoint may not be deployed yet; the provider keeps trying.
_RETRIED = {404, 408, 425, 429}

# One delivery: the body and its headers (signature included).
Delivery = tuple[bytes | str, Mapping[str, str]]

_in_flight: set[asyncio.Task[None]] = set()


def deliver_later(
    http: httpx.AsyncClient, url: str, deliveries: Sequence[Delivery], *, provider: str
) -> None:
    """Send ``deliveries`` to ``url`` in order, in the background."""
    task = asyncio.create_task(deliver(http, url, deliveries, provider=provider))
    _in_flight.add(task)  # keep a reference until it is done
    task.add_done_callback(_in_flight.discard)


async def deliver(
    http: httpx.AsyncClient, url: str, deliveries: Sequence[Delivery], *, provider: str
) -> None:
    for body, headers in deliveries:
        for attempt in range(ATTEMPTS):
            try:
                response = await http.post(url, content=body, headers=dict(headers))
                if response.status_code < 500 and response.status_code not in _RETRIED:
                    if response.status_code >= 400:
                        log.warning(
                            "%s sandbox webhook to %s refused: %d",
                            provider,
                            url,
                            response.status_code,
                        )
                    break
                problem = f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
            if attempt + 1 == ATTEMPTS:
                log.warning(
                    "%s sandbox webhook to %s not delivered after %d attempts: %s",
                    provider,
                    url,
                    ATTEMPTS,
                    problem,
                )
            else:
                log.info("%s sandbox webhook attempt %d failed: %s", provider, attempt + 1, problem)
                await asyncio.sleep(FIRST_BACKOFF_SECONDS * 2**attempt)
