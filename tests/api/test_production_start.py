"""The API in production starts only with what production requires (``core.production``):
without a provider's key its SDK pointed at ``/_sandbox/…``, which production does not
mount, and nothing said so until real customers' payments failed; without the EasyPost
webhook secret every carrier update was answered "carries no X-Hmac-Signature"."""

from __future__ import annotations

import logging

import httpx
import pytest

from api.app import create_app
from api.problems import entry_codes
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


async def test_a_real_easypost_key_without_the_secret_starts_saying_so_and_answers_its_code(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside production with a real EASYPOST_API_KEY the sandbox's (public) secret
    verifies nothing: the API says so as it starts, and answers EasyPost 503
    ``webhook_secret_missing`` (EasyPost sends it again), as it does Stripe. Before, it
    answered 400 "the webhook carries no X-Hmac-Signature" to a signed webhook."""
    real = Settings.model_validate(settings.model_dump() | {"easypost_api_key": "EZAK_real"})
    app = create_app(real)
    with caplog.at_level(logging.WARNING, logger="core.secrets"):
        async with app.router.lifespan_context(app):
            said = [r.getMessage() for r in caplog.records if r.name == "core.secrets"]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.post(
                    WEBHOOK, content=b"{}", headers={"X-Hmac-Signature": "hmac-sha256-hex=00"}
                )
                document = (await http.get("/api/openapi.json")).json()

    assert said == [
        "EASYPOST_WEBHOOK_SECRET is not set while EASYPOST_API_KEY is: EasyPost's webhooks "
        "answer 503 webhook_secret_missing until it is (the sandbox's secret is public)"
    ]
    assert (answer.status_code, answer.json()["code"]) == (503, "webhook_secret_missing")
    assert answer.json()["detail"] == (
        "EASYPOST_WEBHOOK_SECRET is not set: EasyPost's webhooks cannot be verified"
    )
    responses = document["paths"][WEBHOOK]["post"]["responses"]
    assert "webhook_secret_missing" in entry_codes(responses["503"])
