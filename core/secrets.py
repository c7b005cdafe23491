"""The secrets the API must have before it serves: the JWT signing secret (JWT_SECRET in
production, a kept random one elsewhere) and the Stripe webhook secret (refused to start
without in production). Checked as the API starts (``api.state.AppState``)."""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from core.errors import DependencyUnavailable
from core.settings import Settings

log = logging.getLogger(__name__)

SECRET_FILE = "jwt-secret"


def jwt_secret(settings: Settings) -> str:
    """The secret access tokens are signed with.

    Production must set JWT_SECRET. Development and tests keep a random secret in
    ``DATA_DIR/jwt-secret`` so every process of one stack (API replicas, `shop admin`)
    agrees on it and restarts keep tokens valid.
    """
    if settings.jwt_secret is not None:
        value = settings.jwt_secret.get_secret_value()
        if len(value) < 32:
            raise DependencyUnavailable("JWT_SECRET must be at least 32 characters", code="config")
        return value
    if settings.shop_env == "production":
        raise DependencyUnavailable("JWT_SECRET must be set in production", code="config")
    return _kept_secret(settings.shop_data_dir / SECRET_FILE)


def check_stripe_webhook_secret(settings: Settings) -> None:
    """Refuse to start in production without STRIPE_WEBHOOK_SECRET: every webhook of
    Stripe's (3-D Secure's outcome, a refund sent back) would answer 503
    ``webhook_secret_missing``, and the orders waiting for one would wait out their
    timeouts. Outside production the sandbox's secret stands in while the sandbox is the
    Stripe in use; with a real STRIPE_SECRET_KEY and no secret the API starts, says so
    here once, and answers Stripe's webhooks 503 until the secret is set."""
    if settings.resolved_stripe_webhook_secret is not None:
        return
    if settings.shop_env == "production":
        raise DependencyUnavailable(
            "STRIPE_WEBHOOK_SECRET must be set in production (the signing secret of the "
            "Stripe webhook endpoint): Stripe's webhooks cannot be verified without it",
            code="config",
        )
    log.warning(
        "STRIPE_WEBHOOK_SECRET is not set while STRIPE_SECRET_KEY is: Stripe's webhooks "
        "answer 503 webhook_secret_missing until it is (the sandbox's secret is public)"
    )


def _kept_secret(path: Path) -> str:
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL: when two processes race, the loser reads the winner's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the winner may not have written it yet
            if value := path.read_text().strip():
                return value
            time.sleep(0.01)
        raise DependencyUnavailable(f"{path} is empty", code="config") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
