"""Without STRIPE_WEBHOOK_SECRET no Stripe webhook can be verified: production does not
start without it, and elsewhere (a real STRIPE_SECRET_KEY, no secret: the sandbox's is
public) the API says so as it starts and answers Stripe 503 ``webhook_secret_missing``,
its own code, so that Stripe delivers the event again once the secret is set. Before, the
API started in production, said nothing, and answered every webhook 503
``dependency_unavailable``, the code of an outage of the moment. EasyPost's webhooks get
the same treatment (``EASYPOST_API_KEY``, ``EASYPOST_WEBHOOK_SECRET``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from api.problems import entry_codes
from core.errors import DependencyUnavailable
from core.settings import Settings
from tests.stack import production_settings

WEBHOOK = "/api/payments/webhooks/stripe"
SIGNED = {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"}


async def test_production_does_not_start_without_the_stripe_webhook_secret(
    settings: Settings,
) -> None:
    app = create_app(production_settings(settings, stripe_webhook_secret=None))
    with pytest.raises(DependencyUnavailable) as refused:
        async with app.router.lifespan_context(app):
            pass
    assert refused.value.code == "config"
    assert refused.value.detail.startswith("SHOP_ENV=production needs STRIPE_WEBHOOK_SECRET (")

    # With it, production starts and verifies Stripe's webhooks with it.
    configured = create_app(production_settings(settings))
    async with configured.router.lifespan_context(configured):
        transport = httpx.ASGITransport(app=configured)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            forged = await http.post(WEBHOOK, content=b"{}", headers=SIGNED)
    assert (forged.status_code, forged.json()["code"]) == (400, "invalid_signature")


@dataclass(frozen=True)
class RealKey:
    """A provider's real key set outside production, its webhook secret not."""

    setting: str
    webhook: str
    headers: dict[str, str]
    secret: str
    key: str
    provider: str


STRIPE = RealKey(
    "stripe_secret_key", WEBHOOK, SIGNED, "STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "Stripe"
)
# EasyPost's was answered 400 "the webhook carries no X-Hmac-Signature" to a signed one.
EASYPOST = RealKey(
    "easypost_api_key",
    "/api/shipping/webhooks/easypost",
    {"X-Hmac-Signature": "hmac-sha256-hex=00", "Content-Type": "application/json"},
    "EASYPOST_WEBHOOK_SECRET",
    "EASYPOST_API_KEY",
    "EasyPost",
)


@pytest.mark.parametrize("real", [STRIPE, EASYPOST], ids=lambda r: r.provider)
async def test_a_real_key_without_the_secret_starts_saying_so_and_answers_its_code(
    settings: Settings, caplog: pytest.LogCaptureFixture, real: RealKey
) -> None:
    configured = Settings.model_validate(settings.model_dump() | {real.setting: "real_key"})
    app = create_app(configured)
    with caplog.at_level(logging.WARNING, logger="core.secrets"):
        async with app.router.lifespan_context(app):
            said = [r.getMessage() for r in caplog.records if r.name == "core.secrets"]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.post(real.webhook, content=b"{}", headers=real.headers)
                document = (await http.get("/api/openapi.json")).json()

    assert said == [
        f"{real.secret} is not set while {real.key} is: {real.provider}'s webhooks "
        "answer 503 webhook_secret_missing until it is (the sandbox's secret is public)"
    ]
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "webhook_secret_missing"
    assert answer.json()["detail"] == (
        f"{real.secret} is not set: {real.provider}'s webhooks cannot be verified"
    )
    responses = document["paths"][real.webhook]["post"]["responses"]
    assert "webhook_secret_missing" in entry_codes(responses["503"])
