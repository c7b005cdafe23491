"""Without STRIPE_WEBHOOK_SECRET no Stripe webhook can be verified: production does not
start without it, and elsewhere (a real STRIPE_SECRET_KEY, no secret: the sandbox's is
public) the API says so as it starts and answers Stripe 503 ``webhook_secret_missing``,
its own code, so that Stripe delivers the event again once the secret is set. Before, the
API started in production, said nothing, and answered every webhook 503
``dependency_unavailable``, the code of an outage of the moment."""

from __future__ import annotations

import logging

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


async def test_a_real_stripe_key_without_the_secret_starts_saying_so_and_answers_its_code(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    real = Settings.model_validate(settings.model_dump() | {"stripe_secret_key": "sk_test_real"})
    app = create_app(real)
    with caplog.at_level(logging.WARNING, logger="core.secrets"):
        async with app.router.lifespan_context(app):
            said = [r.getMessage() for r in caplog.records if r.name == "core.secrets"]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.post(WEBHOOK, content=b"{}", headers=SIGNED)
                document = (await http.get("/api/openapi.json")).json()

    assert said == [
        "STRIPE_WEBHOOK_SECRET is not set while STRIPE_SECRET_KEY is: Stripe's webhooks "
        "answer 503 webhook_secret_missing until it is (the sandbox's secret is public)"
    ]
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "webhook_secret_missing"
    assert answer.json()["detail"] == (
        "STRIPE_WEBHOOK_SECRET is not set: Stripe's webhooks cannot be verified"
    )
    responses = document["paths"][WEBHOOK]["post"]["responses"]
    assert "webhook_secret_missing" in entry_codes(responses["503"])
