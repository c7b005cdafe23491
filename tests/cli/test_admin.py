"""``shop admin create``: a staff account from the command line."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.factories import PASSWORD, login, unique_email
from tests.stack import StackServers


@pytest.fixture
def cli_env(servers: StackServers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("REDIS_URL", servers.redis_url)


@pytest.mark.usefixtures("cli_env")
def test_admin_create_makes_a_staff_account() -> None:
    email = unique_email("staff")
    result = CliRunner().invoke(app, ["admin", "create", email, "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert "created staff account user_" in result.output
    again = CliRunner().invoke(app, ["admin", "create", email, "--password", PASSWORD])
    assert again.exit_code == 1
    assert "already registered" in again.output


@pytest.mark.usefixtures("cli_env")
def test_admin_create_applies_the_password_policy() -> None:
    result = CliRunner().invoke(app, ["admin", "create", unique_email(), "--password", "short"])
    assert result.exit_code == 1
    assert "at least 15" in result.output
    bad_role = CliRunner().invoke(
        app, ["admin", "create", unique_email(), "--password", PASSWORD, "--role", "root"]
    )
    assert bad_role.exit_code == 1


@pytest.mark.usefixtures("cli_env")
async def test_the_staff_account_can_use_staff_endpoints(client: httpx.AsyncClient) -> None:
    email = unique_email("admin")
    import asyncio

    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["admin", "create", email, "--password", PASSWORD, "--role", "admin"],
    )
    assert result.exit_code == 0, result.output
    tokens = await login(client, email=email)
    assert tokens["user"]["role"] == "admin"
    listing = await client.get(
        "/api/users", headers={"Authorization": f"Bearer {tokens['accessToken']}"}
    )
    assert listing.status_code == 200


@pytest.mark.usefixtures("cli_env")
async def test_admin_unlock_lifts_a_sign_in_lock_out(
    make_client: Any, servers: StackServers
) -> None:
    client: httpx.AsyncClient = await make_client(
        login_max_failures_per_email=2, login_throttle_window_seconds=600
    )
    email = unique_email()
    registered = await client.post(
        "/api/users", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert registered.status_code == 201
    for _ in range(3):
        await client.post("/api/auth/login", json={"email": email, "password": "wrong one here"})
    locked = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    result = await asyncio.to_thread(CliRunner().invoke, app, ["admin", "unlock", email])
    assert result.exit_code == 0, result.output
    assert f"unlocked {email}" in result.output
    assert (await login(client, email=email))["user"]["email"] == email
    nothing = await asyncio.to_thread(CliRunner().invoke, app, ["admin", "unlock"])
    assert nothing.exit_code == 1
