"""The API served over HTTP (no workers) for the services tests whose provider SDK must
reach its sandbox: the Stripe sandbox at ``/_sandbox/stripe``, webhooks at our endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cli.stack.process import free_port
from core.settings import Settings
from tests.live import live_api


@pytest.fixture(scope="module")
async def stripe_api(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    """The API's settings (with its port) and base URL."""
    live = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(live) as base:
        yield live, base
