"""CORS_ALLOWED_ORIGINS and its companions are checked at start (core/settings/browsers.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DEV_CORS_ORIGINS, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CORS_ALLOWED_ORIGINS", "CORS_ALLOW_CREDENTIALS", "SHOP_ENV"):
        monkeypatch.delenv(name, raising=False)


def test_origins_are_read_comma_separated_as_a_browser_sends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CORS_ALLOWED_ORIGINS",
        " https://Shop.Example.com , https://www.example.com:443,http://localhost:8080,",
    )
    assert Settings().cors_origins == {
        "https://shop.example.com",
        "https://www.example.com",
        "http://localhost:8080",
    }


def test_unset_is_none_in_production_and_the_local_dev_servers_otherwise() -> None:
    production = Settings(shop_env="production", jwt_secret="x" * 40)
    assert production.cors_origins == frozenset()
    assert Settings(shop_env="development").cors_origins == set(DEV_CORS_ORIGINS)
    assert "http://localhost:3000" in DEV_CORS_ORIGINS
    assert Settings(shop_env="development", cors_allowed_origins="").cors_origins == frozenset()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://shop.example.com/", "without a path"),
        ("https://shop.example.com/shop", "without a path"),
        ("shop.example.com", "not an origin"),
        ("https://shop.example.com:99999", "out of range"),
        ("https://user@shop.example.com", "not an origin"),
        ("null", "'null'"),
        ("*,https://shop.example.com", "stands alone"),
    ],
)
def test_what_is_not_an_origin_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", value)
    with pytest.raises(ValidationError, match=says):
        Settings()


def test_any_origin_is_refused_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    assert Settings().cors_origins == {"*"}
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ValidationError, match="name the origins"):
        Settings()
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://shop.example.com")
    assert Settings().cors_allow_credentials
