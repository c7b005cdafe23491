"""An API process killed while the supervisor waits for its health-check answer is
replaced at once, not after the health check's timeout.

uvicorn's supervisor waits ``timeout_worker_healthcheck`` for each ping's answer; it kept
its own copy of the pipe's child end, so the death of a process whose answer was pending
did not end the pipe and the supervisor waited the whole timeout (60 s in ``shop dev``)
before it replaced it or any other process: a chaos run killing both API processes in that
minute had no API for a minute. Here the timeout is an hour: the process holds the GIL
(its answer cannot come), is SIGKILLed, and a new one must serve well within that hour.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.cli.supervised import supervised

HEALTHCHECK_SECONDS = 3600
# Far below the health check's hour, far above a start on a loaded machine.
REPLACED_WITHIN = 240


def _serving_pid(port: int, supervisor: subprocess.Popen[bytes], within: float) -> int | None:
    deadline = time.monotonic() + within
    while supervisor.poll() is None and time.monotonic() < deadline:
        try:
            return int(httpx.get(f"http://127.0.0.1:{port}/", timeout=2).json()["pid"])
        except httpx.TransportError:
            time.sleep(0.2)
    return None


def test_a_process_killed_while_its_health_check_is_pending_is_replaced(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    with supervised(
        "create_holding_on_request", starts, timeout_worker_healthcheck=HEALTHCHECK_SECONDS
    ) as (supervisor, port):
        first = _serving_pid(port, supervisor, REPLACED_WITHIN)
        assert first is not None, "never served"

        def hold() -> None:
            with contextlib.suppress(httpx.TransportError):  # killed under it
                httpx.get(f"http://127.0.0.1:{port}/hold?seconds=600", timeout=700)

        threading.Thread(target=hold, daemon=True).start()
        # The supervisor pings every half second: a ping is surely pending after this.
        time.sleep(3)
        os.kill(first, signal.SIGKILL)

        second = _serving_pid(port, supervisor, REPLACED_WITHIN)
        assert second is not None, f"not replaced; processes started: {starts.read_text()!r}"
        assert second != first
        assert starts.read_text().split() == [str(first), str(second)]
