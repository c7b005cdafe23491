"""``shop dev`` as a newcomer runs it: everything up, URLs printed, clean stop, data kept."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import psutil
import pytest

from cli.stack.process import find_binary, free_port, free_server_ports
from core.settings import load_settings
from tests.e2e.conftest import SHOP, DevRun, clean_env, command_lines, http_status

pytestmark = pytest.mark.e2e


def _alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return left


async def _sql(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def _post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        result: dict[str, object] = json.loads(response.read())
        return result


def _wait_for_mail(url: str, timeout: float = 30) -> list[object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            messages: list[object] = json.loads(response.read())
        if messages:
            return messages
        time.sleep(0.3)
    return []


def test_shop_dev_runs_the_stack_stops_cleanly_and_keeps_its_data(dev_run: DevRun) -> None:
    dev_run.workers = 2
    dev_run.start()
    dev_run.wait_ready()

    out = dev_run.output()
    for url in ("/api/docs", "/ready", f"http://localhost:{dev_run.ports['ui']}"):
        assert url in out
    assert http_status(f"http://127.0.0.1:{dev_run.ports['ui']}/") == 200, "Temporal UI"
    assert http_status(f"{dev_run.api}/api/openapi.json") == 200

    # Every server, both workers and the API are children, in their own processes.
    children = dev_run.descendants()
    commands = [command for _, command in command_lines(children)]
    names = " ".join(commands)
    assert "redis-server" in names
    assert "start-dev" in names
    assert "postgres" in names
    assert sum("cli.main worker" in command for command in commands) == 2
    assert sum("cli.main api" in command for command in commands) == 1

    # A second terminal needs no configuration: it finds the stack through stack.env.
    settings = load_settings(dev_run.data_dir)
    assert settings.temporal_address == f"127.0.0.1:{dev_run.ports['temporal']}"
    attrs = subprocess.run(
        [
            str(find_binary("temporal")),
            "operator",
            "search-attribute",
            "list",
            "--address",
            settings.temporal_address,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    for name in ("CustomerId", "OrderStatus", "OrderTotal"):
        assert name in attrs.stdout
    probe = subprocess.run(
        [SHOP, "admin", "probe", "--data-dir", str(dev_run.data_dir)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    for queue in ("orders", "payments", "notifications", "default", "events"):
        assert queue in probe.stdout

    # A registration through the real API reaches the real worker, whose welcome email
    # lands in the sandbox mailbox.
    email = f"e2e-{dev_run.ports['api']}@example.com"
    registered = _post_json(
        f"{dev_run.api}/api/users",
        {"email": email, "password": "violet tangerine orbit lamp 42", "name": "E2E"},
    )
    assert registered["email"] == email
    assert _wait_for_mail(f"{dev_run.api}/_sandbox/mail/messages?to={email}")

    database_url = settings.resolved_database_url
    assert database_url is not None
    marker = asyncio.run(
        _sql(
            database_url,
            "INSERT INTO outbox (id, type, aggregate_type, aggregate_id, data) "
            "VALUES ('evt_e2e_marker', 'test.marker', 'system', 'e2e', '{}') RETURNING id",
        )
    )
    assert marker == "evt_e2e_marker"

    assert dev_run.terminate() == 0, dev_run.output()
    assert _alive(children) == []
    assert not (dev_run.data_dir / "stack.env").exists()
    assert "stopped" in dev_run.output()

    # The same data dir again: the row written before the stop is still there.
    dev_run.workers = 1
    dev_run.start()
    dev_run.wait_ready()
    kept = asyncio.run(_sql(database_url, "SELECT count(*) FROM outbox WHERE id = $1", marker))
    assert kept == 1
    children = dev_run.descendants()
    assert dev_run.terminate() == 0
    assert _alive(children) == []


def _run_shop_dev(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    ports = ["--api-port", str(free_port()), *free_server_ports()]
    return subprocess.run(
        [SHOP, "dev", "--data-dir", str(tmp_path / "data"), *ports, *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def test_an_unreachable_database_url_is_one_clear_line(tmp_path: Path) -> None:
    result = _run_shop_dev(tmp_path, DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/x")
    line = _one_line_error(result)
    assert "PostgreSQL" in line
    assert "DATABASE_URL" in line
    assert "127.0.0.1:1" in line


def test_an_unreachable_redis_url_is_one_clear_line(tmp_path: Path) -> None:
    result = _run_shop_dev(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    line = _one_line_error(result)
    assert "Redis" in line
    assert "REDIS_URL" in line


def test_a_port_in_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [SHOP, "dev", "--data-dir", str(tmp_path / "d"), "--api-port", str(port)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
        )
    line = _one_line_error(result)
    assert f"port {port}" in line
    assert "API" in line
    assert not (tmp_path / "d" / "postgres").exists()


def test_other_commands_without_a_stack_say_how_to_get_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    line = _one_line_error(result)
    assert "shop dev" in line


def test_shop_dev_takes_its_api_port_from_the_environment_and_writes_stack_env_first(
    dev_run: DevRun,
) -> None:
    """`SHOP_API_PORT=4000 make dev` serves on 4000; and a command run the moment /ready
    answers (`shop admin create`) finds stack.env."""
    dev_run.api_port_from_env = True
    dev_run.start()
    assert dev_run.proc is not None
    deadline = time.monotonic() + 90
    while http_status(f"{dev_run.api}/ready") != 200:
        assert dev_run.proc.poll() is None, dev_run.output()
        assert time.monotonic() < deadline, dev_run.output()
        time.sleep(0.1)
    stack_env = (dev_run.data_dir / "stack.env").read_text()
    assert f"SHOP_API_PORT={dev_run.ports['api']}" in stack_env
    created = subprocess.run(
        [SHOP, "admin", "create", "ops@example.com", "--password", "violet tangerine orbit 42"],
        env=clean_env(SHOP_DATA_DIR=str(dev_run.data_dir)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert dev_run.terminate() == 0
