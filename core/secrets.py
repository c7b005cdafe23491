"""The secrets the API must have before it serves: the JWT signing secret (JWT_SECRET in
production, a kept random one elsewhere) and the providers' webhook secrets. Production's
requirements are checked first (``core.production``); these run as the API starts
(``api.state.AppState``)."""

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


# JWT_SECRET's least length, refused anywhere (and named by ``core.production``).
JWT_SECRET_MIN_LENGTH = 32


def jwt_secret(settings: Settings) -> str:
    """The secret access tokens are signed with.

    Production must set JWT_SECRET. Development and tests keep a random secret in
    ``DATA_DIR/jwt-secret`` so every process of one stack (API replicas, `shop admin`)
    agrees on it and restarts keep tokens valid.
    """
    if settings.jwt_secret is not None:
        value = settings.jwt_secret.get_secret_value()
        if len(value) < JWT_SECRET_MIN_LENGTH:
            raise DependencyUnavailable(
                f"JWT_SECRET must be at least {JWT_SECRET_MIN_LENGTH} characters", code="config"
            )
        return value
    if settings.shop_env == "production":
        raise DependencyUnavailable("JWT_SECRET must be set in production", code="config")
    return _kept_secret(settings.shop_data_dir / SECRET_FILE)


def warn_unverifiable_webhooks(settings: Settings) -> None:
    """Say once, as the API starts, which providers' webhooks cannot be verified. Outside
    production each sandbox's secret stands in while the sandbox is the provider in use;
    with a real STRIPE_SECRET_KEY (EASYPOST_API_KEY) and no STRIPE_WEBHOOK_SECRET
    (EASYPOST_WEBHOOK_SECRET) the API starts and answers that provider's webhooks 503
    ``webhook_secret_missing`` until the secret is set (the provider sends them again).
    Production does not start without them (``core.production``)."""
    s = settings
    if not s.sandboxes_enabled:
        return
    for secret, variable, key, provider in (
        (s.resolved_stripe_webhook_secret, "STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "Stripe"),
        (
            s.resolved_easypost_webhook_secret,
            "EASYPOST_WEBHOOK_SECRET",
            "EASYPOST_API_KEY",
            "EasyPost",
        ),
    ):
        if secret is None:
            log.warning(
                "%s is not set while %s is: %s's webhooks answer 503 webhook_secret_missing "
                "until it is (the sandbox's secret is public)",
                variable,
                key,
                provider,
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
