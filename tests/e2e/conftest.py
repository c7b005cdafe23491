"""Helpers for running the real ``shop`` command as a client would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from cli.stack.process import free_port
from tests.factories import PASSWORD, bearer, login, unique_email
from tests.orders.helpers import Shopper, shopper_with_cart
from tests.stack import TEST_DEADLOCK_TIMEOUT_SECONDS, TEST_HASH_COST

SHOP = str(Path(sys.executable).parent / "shop")
# Variables that would make `shop dev` use external servers instead of embedded ones.
EXTERNAL_VARS = ("DATABASE_URL", "DB_HOST", "REDIS_URL", "TEMPORAL_ADDRESS", "SHOP_DATA_DIR")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_VARS}
    # The shoppers these runs sign up need no production-grade argon2 cost.
    env.update({key.upper(): str(value) for key, value in TEST_HASH_COST.items()})
    env["WORKFLOW_DEADLOCK_TIMEOUT_SECONDS"] = str(TEST_DEADLOCK_TIMEOUT_SECONDS)
    env.update(extra)
    return env


def http_status(url: str, timeout: float = 30) -> int | None:
    """The status a GET answers with, or None if nothing answers. A server that answers
    slowly (the first /api/openapi.json builds the schema, on a loaded machine: seconds)
    is waited for."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


@dataclass
class DevRun:
    data_dir: Path
    ports: dict[str, int]
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    # Give the API port as SHOP_API_PORT instead of --api-port.
    api_port_from_env: bool = False
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data_dir.parent / f"{self.data_dir.name}-dev.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def start(self) -> None:
        argv = [
            SHOP,
            "dev",
            "--data-dir",
            str(self.data_dir),
            "--api-port",
            str(self.ports["api"]),
            "--temporal-port",
            str(self.ports["temporal"]),
            "--ui-port",
            str(self.ports["ui"]),
            "--postgres-port",
            str(self.ports["postgres"]),
            "--redis-port",
            str(self.ports["redis"]),
            "--workers",
            str(self.workers),
        ]
        env = dict(self.env)
        if self.api_port_from_env:
            argv.remove("--api-port")
            argv.remove(str(self.ports["api"]))
            env["SHOP_API_PORT"] = str(self.ports["api"])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(**env),
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 240) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"shop dev exited with {self.proc.returncode}:\n{self.output()}")
            # Ready, and done starting: every URL printed (stack.env comes earlier).
            if "Shopweave is running" in self.output() and http_status(f"{self.api}/ready") == 200:
                return
            time.sleep(0.5)
        pytest.fail(f"shop dev was not ready within {timeout}s:\n{self.output()}")

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill_everything(self) -> None:
        """Test clean-up after a failure: leave nothing running whatever happened."""
        if self.proc is None or self.proc.poll() is not None:
            return
        procs = [*self.descendants(), psutil.Process(self.proc.pid)]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def dev_ports() -> dict[str, int]:
    return {name: free_port() for name in ("api", "temporal", "ui", "postgres", "redis")}


@pytest.fixture
def dev_run(tmp_path: Path, dev_ports: dict[str, int]) -> Iterator[DevRun]:
    run = DevRun(data_dir=tmp_path / "data", ports=dev_ports)
    yield run
    run.kill_everything()


@contextlib.contextmanager
def running_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, workers: int = 1, **env: str
) -> Iterator[DevRun]:
    """``shop dev`` on free ports for a test module, killed (with every child) after."""
    ports = {name: free_port() for name in ("api", "temporal", "ui", "postgres", "redis")}
    run = DevRun(
        data_dir=tmp_path_factory.mktemp(name) / "data", ports=ports, workers=workers, env=env
    )
    run.start()
    try:
        run.wait_ready()
        yield run
    finally:
        run.kill_everything()


# With a module's ``stack`` fixture (a ``running_stack``):


@pytest.fixture
async def http(stack: DevRun) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=stack.api, timeout=60, limits=limits) as client:
        yield client
        await client.delete("/_sandbox/stripe/faults")


@pytest.fixture
async def staff(stack: DevRun, http: httpx.AsyncClient) -> dict[str, str]:
    email = unique_email("e2e-staff")
    await asyncio.to_thread(
        subprocess.run,
        [SHOP, "admin", "create", email, "--password", PASSWORD, "--data-dir", str(stack.data_dir)],
        env=clean_env(),
        check=True,
        capture_output=True,
    )
    return bearer(await login(http, email=email))


def command_lines(processes: list[psutil.Process]) -> list[tuple[psutil.Process, str]]:
    """Each process with its command line; one that ends between the listing and the
    reading is left out (a CI run failed on one: ``NoSuchProcess`` from ``cmdline``)."""
    found = []
    for process in processes:
        try:
            found.append((process, " ".join(process.cmdline())))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def worker_processes(stack: DevRun) -> list[psutil.Process]:
    """The worker processes ``shop dev`` runs (and restarts)."""
    return [p for p, command in command_lines(stack.descendants()) if "cli.main worker" in command]


async def shoppers_with(http: httpx.AsyncClient, item: dict[str, Any], count: int) -> list[Shopper]:
    """``count`` signed-up shoppers with one ``item`` each in their carts."""
    gate = asyncio.Semaphore(10)

    async def one() -> Shopper:
        async with gate:
            return await shopper_with_cart(http, [(item, 1)])

    return list(await asyncio.gather(*(one() for _ in range(count))))
