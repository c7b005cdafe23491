from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings, load_settings

URL_VARS = ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*URL_VARS, "REDIS_URL", "TEMPORAL_ADDRESS", "SHOP_DATA_DIR", "SHOP_API_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_the_seeds_db_host_port_name_build_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6543")
    monkeypatch.setenv("DB_NAME", "ecommerce")
    monkeypatch.setenv("DB_PASSWORD", "p@ss word")
    url = Settings().resolved_database_url
    assert url == "postgresql+asyncpg://postgres:p%40ss%20word@db.internal:6543/ecommerce"


def test_database_url_wins_and_is_driven_by_asyncpg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:1/d")
    assert Settings().resolved_database_url == "postgresql+asyncpg://u@h:1/d"


def test_nothing_configured_means_no_database() -> None:
    assert Settings().resolved_database_url is None


def test_every_seed_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    monkeypatch.setenv("ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "shop")
    monkeypatch.setenv("SHOP_API_PORT", "4000")
    s = Settings()
    assert s.redis_url == "redis://cache:6379/2"
    assert s.stripe_secret_key is not None
    assert s.stripe_secret_key.get_secret_value() == "sk_test_x"
    assert s.stripe_webhook_secret is not None
    assert s.sendgrid_api_key is not None
    assert s.analytics_enabled is False
    assert (s.temporal_address, s.temporal_namespace, s.shop_api_port) == (
        "temporal:7233",
        "shop",
        4000,
    )
    # Secrets never show in a repr (and so never in a log line).
    assert "sk_test_x" not in repr(s)


def test_stack_env_is_read_but_real_env_vars_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "stack.env").write_text(
        "# comment\nDATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:1/shop\n"
        "REDIS_URL=redis://127.0.0.1:2/0\nTEMPORAL_ADDRESS=127.0.0.1:3\n"
    )
    s = load_settings(tmp_path)
    assert s.resolved_database_url == "postgresql+asyncpg://postgres@127.0.0.1:1/shop"
    assert s.temporal_address == "127.0.0.1:3"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    assert load_settings(tmp_path).redis_url == "redis://elsewhere:6379/0"


def test_shop_data_dir_names_where_stack_env_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "stack.env").write_text("REDIS_URL=redis://127.0.0.1:9/0\n")
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    assert load_settings().redis_url == "redis://127.0.0.1:9/0"
    assert load_settings(tmp_path / "nowhere").redis_url is None


def test_an_empty_provider_key_means_unset_so_the_sandbox_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docker-compose passes `${HUBSPOT_ACCESS_TOKEN:-}`: empty when the operator set none.
    for name in ("HUBSPOT_ACCESS_TOKEN", "SENDGRID_API_KEY", "STRIPE_SECRET_KEY"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.hubspot_access_token is None
    assert settings.crm_uses_sandbox
    assert settings.email_uses_sandbox
    assert settings.stripe_secret_key is None


def test_a_subscriber_grace_shorter_than_three_relay_polls_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live relay writes what it knows once a poll: a shorter grace could drop the
    deliveries of a subscriber a running worker knows."""
    monkeypatch.setenv("EVENT_RELAY_POLL_SECONDS", "60")
    monkeypatch.setenv("EVENT_SUBSCRIBER_GRACE_SECONDS", "179")
    with pytest.raises(ValueError, match="EVENT_SUBSCRIBER_GRACE_SECONDS"):
        Settings()
    monkeypatch.setenv("EVENT_SUBSCRIBER_GRACE_SECONDS", "180")
    assert Settings().event_subscriber_grace_seconds == 180.0


def test_the_authorise_budget_is_a_third_of_the_reservation_by_default() -> None:
    assert Settings().authorize_budget_seconds == 300
    assert Settings(reservation_ttl_seconds=60).authorize_budget_seconds == 20
    assert Settings(payment_authorize_timeout_seconds=45).authorize_budget_seconds == 45


def test_an_authorise_budget_longer_than_half_the_reservation_is_refused() -> None:
    """Waiting longer for Stripe than half the stock's hold could lose the hold."""
    Settings(reservation_ttl_seconds=600, payment_authorize_timeout_seconds=300)
    with pytest.raises(ValueError, match="at most half of RESERVATION_TTL_SECONDS"):
        Settings(reservation_ttl_seconds=600, payment_authorize_timeout_seconds=301)
