"""What ``SHOP_ENV=production`` requires (``core.production``): every setting a process
lacks is named at once, one line each with what to do, before it serves anything.

Before, ``shop api`` started uvicorn, whose start-up failed on the first missing setting
with a traceback and exit status 3; ``shop worker`` named one setting per attempt; and
without a provider's key both started, their SDKs pointed at a sandbox production does
not mount."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import DependencyUnavailable
from core.production import REQUIREMENTS, Requirement, check_production, production_problems
from core.settings import Settings
from core.telemetry import ProcessRole

SHOP = Path(sys.executable).parent / "shop"

# A production configuration that lacks nothing.
COMPLETE: dict[str, Any] = {
    "jwt_secret": "a-production-secret-of-enough-length-123",
    "database_url": "postgresql+asyncpg://shop:pw@db.internal:5432/ecommerce",
    "redis_url": "redis://cache.internal:6379/0",
    "temporal_address": "temporal.internal:7233",
    "stripe_secret_key": "sk_live_x",
    "stripe_webhook_secret": "whsec_x",
    "sendgrid_api_key": "SG.x",
    "easypost_api_key": "EZAK_x",
    "easypost_webhook_secret": "easypost-webhook-secret",
}
ROLES = (ProcessRole.API, ProcessRole.WORKER)

Make = Callable[..., Settings]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Make:
    """Settings as the values given make them, whatever this process's environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)

    def make(**values: Any) -> Settings:
        given: dict[str, Any] = {"shop_env": "production", "shop_data_dir": tmp_path} | values
        return Settings(_env_file=None, **{k: v for k, v in given.items() if v is not None})

    return make


# What a deployment must pass; the others (a provider's base URL) are right when unset.
PASSED = tuple(r for r in REQUIREMENTS if r.passed)


def _lines(role: ProcessRole) -> list[str]:
    return [r.line() for r in PASSED if role in r.roles]


def test_a_complete_production_configuration_starts(production: Make) -> None:
    settings = production(**COMPLETE)
    for role in ROLES:
        assert production_problems(settings, role) == []
        check_production(settings, role)


def test_outside_production_nothing_is_required(production: Make) -> None:
    for env in ("development", "test"):
        for role in ROLES:
            assert production_problems(production(shop_env=env), role) == []


def test_every_missing_setting_is_named_at_once(production: Make) -> None:
    bare = production()
    for role in ROLES:
        with pytest.raises(DependencyUnavailable) as refused:
            check_production(bare, role)
        assert refused.value.code == "config"
        assert refused.value.detail.splitlines() == _lines(role)
    # Each process is asked for what it uses: the API signs tokens and verifies
    # webhooks; the worker sends the emails and buys the labels.
    assert {r.variable for r in PASSED if ProcessRole.API in r.roles} == {
        "JWT_SECRET",
        "DATABASE_URL",
        "REDIS_URL",
        "TEMPORAL_ADDRESS",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "EASYPOST_WEBHOOK_SECRET",
    }
    assert {r.variable for r in PASSED if ProcessRole.WORKER in r.roles} == {
        "DATABASE_URL",
        "REDIS_URL",
        "TEMPORAL_ADDRESS",
        "STRIPE_SECRET_KEY",
        "SENDGRID_API_KEY",
        "EASYPOST_API_KEY",
    }


@pytest.mark.parametrize("requirement", PASSED, ids=lambda r: r.variable)
def test_each_requirement_alone(production: Make, requirement: Requirement) -> None:
    """Without one setting, exactly its line, in each process that needs it: a provider's
    key above all, whose absence pointed the SDK at a sandbox production does not mount."""
    settings = production(**COMPLETE | {requirement.variable.lower(): None})
    for role in ROLES:
        expected = [requirement.line()] if role in requirement.roles else []
        assert production_problems(settings, role) == expected
    assert requirement.line().startswith(f"SHOP_ENV=production needs {requirement.variable} (")


def test_the_seeds_database_variables_stand_for_database_url(production: Make) -> None:
    settings = production(**COMPLETE | {"database_url": None, "db_host": "db.internal"})
    assert production_problems(settings, ProcessRole.WORKER) == []


def test_a_short_jwt_secret_is_named_with_what_to_do(production: Make) -> None:
    settings = production(**COMPLETE | {"jwt_secret": "too-short"})
    [line] = production_problems(settings, ProcessRole.API)
    assert line.startswith("SHOP_ENV=production needs JWT_SECRET (at least 32 random characters")
    assert "secrets.token_urlsafe" in line


def test_hubspot_is_optional_and_its_absence_is_said_once_by_a_worker(
    production: Make, caplog: pytest.LogCaptureFixture
) -> None:
    without = production(**COMPLETE)
    assert not without.crm_enabled
    assert production(**COMPLETE, hubspot_access_token="pat-x").crm_enabled
    assert production(shop_env="development").crm_enabled  # the sandbox stands in
    with caplog.at_level(logging.WARNING, logger="core.production"):
        check_production(without, ProcessRole.API)
        check_production(production(**COMPLETE, hubspot_access_token="pat-x"), ProcessRole.WORKER)
        assert caplog.records == []
        check_production(without, ProcessRole.WORKER)
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith("HUBSPOT_ACCESS_TOKEN is not set: the CRM is off")


def _shop(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``shop COMMAND`` in production with only ``env`` set (no running stack's file)."""
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SHOP_ENV": "production",
        "SHOP_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.run(
        [str(SHOP), *command],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "role"), [("api", ProcessRole.API), ("worker", ProcessRole.WORKER)]
)
def test_shop_refuses_a_bare_production_configuration_one_line_each(
    tmp_path: Path, command: str, role: ProcessRole
) -> None:
    ran = _shop(tmp_path, command)
    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {line}" for line in _lines(role)]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"SHOP_API_PORT": "port"},
            "SHOP_API_PORT: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            {"PASSWORD_HASH_TIME_COST": "1"},
            "in production PASSWORD_HASH_MEMORY_KIB must be at least 19456 and "
            "PASSWORD_HASH_TIME_COST at least 2 (OWASP's argon2id floor)",
        ),
    ],
)
def test_shop_names_an_invalid_setting_in_one_line(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    ran = _shop(tmp_path, "api", **env)
    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.stderr.splitlines() == [f"error: {line}"]


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"stripe_secret_key": "sk_test_x"}, "STRIPE_SECRET_KEY"),
        ({"stripe_secret_key": "rk_test_x"}, "STRIPE_SECRET_KEY"),
        ({"easypost_api_key": "EZTKx"}, "EASYPOST_API_KEY"),
        ({"sendgrid_base_url": "https://shop.example/_sandbox/sendgrid"}, "SENDGRID_BASE_URL"),
        ({"easypost_base_url": "http://api:3001/_sandbox/easypost/v2"}, "EASYPOST_BASE_URL"),
        (
            {"hubspot_access_token": "pat-x", "hubspot_base_url": "http://api/_sandbox/hubspot"},
            "HUBSPOT_BASE_URL",
        ),
    ],
)
def test_a_test_key_or_a_sandbox_url_is_refused(
    production: Make, values: dict[str, Any], variable: str
) -> None:
    """A staging .env in production: a test-mode key (no money taken, labels no carrier
    honours) or a provider URL left at its sandbox (404: production mounts none) is
    named, as a missing key is. Each passed the check before."""
    settings = production(**COMPLETE | values)
    problems = [line for role in ROLES for line in production_problems(settings, role)]
    assert problems, values
    assert all(line.startswith(f"SHOP_ENV=production needs {variable} (") for line in problems)


def test_live_keys_and_real_urls_pass(production: Make) -> None:
    settings = production(
        **COMPLETE
        | {
            "stripe_secret_key": "rk_live_x",
            "sendgrid_base_url": "https://api.sendgrid.com",
            "hubspot_base_url": "http://proxy.internal/_sandbox/hubspot",  # CRM off: unused
        }
    )
    for role in ROLES:
        assert production_problems(settings, role) == []


def test_a_worker_is_asked_only_for_what_its_queues_use(production: Make) -> None:
    """``shop worker --queue default`` uses no provider; ``--queue payments`` only Stripe.
    All queues were asked for every provider's key."""
    bare_providers = production(
        **COMPLETE | {"stripe_secret_key": None, "sendgrid_api_key": None, "easypost_api_key": None}
    )
    worker = ProcessRole.WORKER

    def named(queues: list[str] | None) -> list[str]:
        return [line.split()[2] for line in production_problems(bare_providers, worker, queues)]

    assert named(["default"]) == []
    assert named(["payments"]) == ["STRIPE_SECRET_KEY"]
    assert named(["notifications"]) == ["SENDGRID_API_KEY"]
    assert named(["orders"]) == ["STRIPE_SECRET_KEY", "EASYPOST_API_KEY"]
    assert named(None) == named(["orders", "payments", "notifications", "default", "events"])
    assert named(None) == ["STRIPE_SECRET_KEY", "SENDGRID_API_KEY", "EASYPOST_API_KEY"]
    # The server addresses are every worker's.
    assert production_problems(production(**COMPLETE | {"redis_url": None}), worker, ["default"])
