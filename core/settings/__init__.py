"""The one place configuration is read (STYLE rule 5).

Precedence, highest first: real environment variables, then ``DATA_DIR/stack.env``
(written by ``shop dev`` so a second terminal finds the running stack), then defaults.

``Settings`` is one class, composed of its groups, one module each: the stack
(``stack.py``: data dir, API address, PostgreSQL, Redis, Temporal, search index), the
providers (``providers.py``), the shop's rules (``shop.py``), events and webhooks
(``events.py``), the browsers' cross-origin access (``browsers.py``), analytics, logs and
traces (``observability.py``). A setting is read
from the environment variable of its name wherever it is declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import SettingsConfigDict

from core.settings.browsers import DEV_CORS_ORIGINS, BrowserSettings
from core.settings.events import EventSettings
from core.settings.observability import ObservabilitySettings
from core.settings.providers import (
    REAL_SENDGRID_ACTIVITY_LAG,
    SANDBOX_EASYPOST_API_KEY,
    SANDBOX_EASYPOST_WEBHOOK_SECRET,
    SANDBOX_WEBHOOK_SECRET,
    ProviderSettings,
)
from core.settings.shop import RETURN_REASONS, ShopSettings
from core.settings.stack import STACK_ENV_FILE, normalize_database_url

__all__ = [
    "DEV_CORS_ORIGINS",
    "REAL_SENDGRID_ACTIVITY_LAG",
    "RETURN_REASONS",
    "SANDBOX_EASYPOST_API_KEY",
    "SANDBOX_EASYPOST_WEBHOOK_SECRET",
    "SANDBOX_WEBHOOK_SECRET",
    "STACK_ENV_FILE",
    "Settings",
    "load_settings",
    "normalize_database_url",
]


class Settings(
    ProviderSettings, ShopSettings, EventSettings, BrowserSettings, ObservabilitySettings
):
    """Every knob Shopweave has, named after its environment variable."""

    model_config = SettingsConfigDict(
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `KEY=` is unset, not an empty key: docker-compose's `${HUBSPOT_ACCESS_TOKEN:-}`
        # must leave the provider's sandbox in place, not call HubSpot with no token.
        env_ignore_empty=True,
    )


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build settings, reading ``DATA_DIR/stack.env`` of a running `shop dev` if there is one.

    ``data_dir`` (the CLI's ``--data-dir``) wins over ``SHOP_DATA_DIR``.
    """
    kwargs: dict[str, Any] = dict(overrides)
    if data_dir is not None:
        kwargs["shop_data_dir"] = data_dir
    stack_env = Settings(**kwargs).stack_env_path
    if stack_env.is_file():
        kwargs["_env_file"] = stack_env
    return Settings(**kwargs)
