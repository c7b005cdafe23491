"""Helpers for running the real ``shop`` command as a client would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from cli.stack.process import free_port

SHOP = str(Path(sys.executable).parent / "shop")
# Variables that would make `shop dev` use external servers instead of embedded ones.
EXTERNAL_VARS = ("DATABASE_URL", "DB_HOST", "REDIS_URL", "TEMPORAL_ADDRESS", "SHOP_DATA_DIR")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_VARS}
    env.update(extra)
    return env


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
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
            SHOP, "dev",
            "--data-dir", str(self.data_dir),
            "--api-port", str(self.ports["api"]),
            "--temporal-port", str(self.ports["temporal"]),
            "--ui-port", str(self.ports["ui"]),
            "--postgres-port", str(self.ports["postgres"]),
            "--redis-port", str(self.ports["redis"]),
            "--workers", str(self.workers),
        ]  # fmt: skip
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

    def wait_ready(self, timeout: float = 90) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"shop dev exited with {self.proc.returncode}:\n{self.output()}")
            if http_status(f"{self.api}/ready") == 200 and (self.data_dir / "stack.env").exists():
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
