"""The API in production starts only with what production requires (``core.production``):
without a provider's key its SDK pointed at ``/_sandbox/…``, which production does not
mount, and nothing said so until real customers' payments failed; without the EasyPost
webhook secret every carrier update was answered "carries no X-Hmac-Signature"."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from core.errors import DependencyUnavailable
from core.production import REQUIREMENTS, Requirement
from core.settings import Settings
from core.telemetry import ProcessRole
from tests.stack import production_settings

WEBHOOK = "/api/shipping/webhooks/easypost"
API_REQUIREMENTS = [r for r in REQUIREMENTS if ProcessRole.API in r.roles]


@pytest.mark.parametrize("requirement", API_REQUIREMENTS, ids=lambda r: r.variable)
async def test_production_does_not_start_without_it(
    settings: Settings, requirement: Requirement
) -> None:
    unset = {requirement.variable.lower(): None}
    app = create_app(production_settings(settings, **unset))
    with pytest.raises(DependencyUnavailable) as refused:
        async with app.router.lifespan_context(app):
            pass
    assert refused.value.code == "config"
    assert refused.value.detail == requirement.line()


async def test_production_starts_with_everything_and_verifies_the_carrier(
    settings: Settings,
) -> None:
    app = create_app(production_settings(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            forged = await http.post(
                WEBHOOK,
                content=b"{}",
                headers={"X-Hmac-Signature": "hmac-sha256-hex=00"},
            )
    assert (forged.status_code, forged.json()["code"]) == (400, "invalid_signature")
