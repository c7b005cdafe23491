"""Docker cannot run here, so the production topology is checked by reading it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.production import REQUIREMENTS
from core.settings import Settings
from core.telemetry import ProcessRole

# Our own image's services: their environment is read by core.settings.Settings.
SHOP_SERVICES = ("setup", "api", "worker")


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_the_topology_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "temporal", "temporal-ui", "api", "worker"):
        assert name in services, name
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "3001:3001" in services["api"]["ports"]


def test_temporal_persists_in_postgresql(compose: dict[str, Any]) -> None:
    temporal = compose["services"]["temporal"]
    env = _env(temporal)
    assert env["DB"].startswith("postgres")
    assert env["POSTGRES_SEEDS"] == "postgres"
    assert "postgres" in temporal["depends_on"]
    ui = _env(compose["services"]["temporal-ui"])
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"


@pytest.mark.parametrize("name", SHOP_SERVICES)
def test_shop_services_only_set_settings_that_exist(compose: dict[str, Any], name: str) -> None:
    known = {field.upper() for field in Settings.model_fields}
    env = _env(compose["services"][name])
    assert env, f"{name} has no environment"
    unknown = sorted(set(env) - known)
    assert unknown == [], f"{name} sets variables no setting reads: {unknown}"


@pytest.mark.parametrize("name", SHOP_SERVICES)
def test_shop_services_point_at_the_compose_servers(compose: dict[str, Any], name: str) -> None:
    env = _env(compose["services"][name])
    values = {k.lower(): v for k, v in env.items() if v and "${" not in v}
    settings = Settings.model_validate(values)
    assert settings.resolved_database_url is not None
    assert "@postgres:5432/" in settings.resolved_database_url
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.temporal_address == "temporal:7233"


def test_every_dependency_names_a_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_the_dockerfile_runs_the_shop_command(repo_root: Path) -> None:
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert re.search(r'^CMD \["shop", "api"\]', dockerfile, re.M)
    assert "constraints.txt" in dockerfile  # the same pinned versions as development
    for package in ("api", "core", "cli", "migrations", "workflows", "activities", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "USER shop" in dockerfile


# Each of our services' processes, as the production check knows it.
SERVICE_ROLES = {"api": ProcessRole.API, "worker": ProcessRole.WORKER}


@pytest.mark.parametrize("name", sorted(SERVICE_ROLES))
def test_shop_services_pass_what_production_requires(compose: dict[str, Any], name: str) -> None:
    """Every variable the production check requires of the service's process is passed:
    a server's address as written, a secret or key as ``${VAR:?message}``, so that
    ``docker compose up`` says what is missing before anything starts (an empty
    ``${VAR:-}`` started the API into a traceback). From ``core.production``'s own list,
    so the two cannot drift."""
    env = _env(compose["services"][name])
    assert env["SHOP_ENV"] == "production"
    role = SERVICE_ROLES[name]
    required = [r.variable for r in REQUIREMENTS if role in r.roles and r.passed]
    assert required, role
    for variable in required:
        value = env.get(variable, "")
        if "${" not in value:
            assert value, f"{name} does not pass {variable}"
            continue
        match = re.fullmatch(r"\$\{(\w+):\?([^}]+)\}", value)
        assert match is not None, f"{name}: {variable} is {value!r}, not ${{{variable}:?…}}"
        assert match.group(1) == variable
