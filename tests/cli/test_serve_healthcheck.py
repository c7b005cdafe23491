"""An API process that is slow to start is waited for, not killed and restarted.

uvicorn's supervisor pings each process and kills one that does not answer within
``timeout_worker_healthcheck`` (5 s by default). The answer comes from a thread, which
needs the GIL; while the app imports on two busy cores it can wait longer than that, and
`shop dev` never came up: every process was killed while it started. ``serve_processes``
waits ``WORKER_HEALTHCHECK_SECONDS``; here an app holds the GIL for 7 s before it serves
and must come up in the first process the supervisor started.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from cli.serve import WORKER_HEALTHCHECK_SECONDS
from tests.cli.gil_holding_app import HOLD_SECONDS
from tests.cli.supervised import supervised


def test_a_process_holding_the_gil_while_it_starts_is_not_killed(tmp_path: Path) -> None:
    assert WORKER_HEALTHCHECK_SECONDS > HOLD_SECONDS
    starts = tmp_path / "starts"
    with supervised("create", starts) as (supervisor, port):
        # Until it serves (or the supervisor gives up): on a loaded machine the imports
        # alone can take longer than the hold. A process killed by the health check and
        # replaced would show as a second start below, however long this waits.
        deadline = time.monotonic() + 2 * WORKER_HEALTHCHECK_SECONDS
        answer = None
        while answer is None and supervisor.poll() is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, f"never served; processes started: {starts.read_text()!r}"
        [started] = starts.read_text().split()
        assert answer["pid"] == int(started)
