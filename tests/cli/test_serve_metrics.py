"""``shop api --workers 2`` answers one ``/metrics`` for both processes.

Each process used to answer its own counters: Prometheus scraping the port saw
``http_requests_total`` jump between two series at every scrape (a counter reset each
time) and missed the requests of the process it did not reach. Here requests go on new
connections until both processes have answered some (which process accepted a connection
is read from the processes' descriptors), and then both processes' ``/metrics`` count
all of them.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_serve_nodelay import api_in_two_processes, fetch_fd, keep_alive_get

__all__ = ["api_in_two_processes"]  # the fixture, shared with the TCP_NODELAY test


def accepting_worker(supervisor: int, client: socket.socket) -> int | None:
    """The pid of the supervisor's worker holding ``client``'s other end."""
    for worker in psutil.Process(supervisor).children(recursive=True):
        for entry in Path(f"/proc/{worker.pid}/fd").iterdir():
            try:
                if not os.readlink(entry).startswith("socket:"):
                    continue
            except FileNotFoundError:  # closed meanwhile
                continue
            sock = fetch_fd(worker.pid, int(entry.name))
            if sock is None:
                continue
            with sock:
                try:
                    if sock.getpeername() == client.getsockname():
                        return worker.pid
                except OSError:  # listening or not connected
                    pass
    return None


def health_requests(exposition: bytes) -> float:
    """``http_requests_total`` of ``GET /health`` answered 200, from a ``/metrics`` answer."""
    text = exposition.partition(b"\r\n\r\n")[2].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels == {
                "method": "GET",
                "route": "/health",
                "status": "200",
            }:
                return sample.value
    return 0.0


def connect(port: int, supervisor: int, log: Path) -> socket.socket:
    for _ in range(600):  # the workers start (a minute at most)
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except ConnectionRefusedError:
            assert psutil.Process(supervisor).status() != psutil.STATUS_ZOMBIE, log.read_text()
            time.sleep(0.1)
    raise AssertionError(f"shop api never listened:\n{log.read_text()}")


def get_from_any_process(
    port: int, supervisor: int, log: Path, path: str
) -> tuple[int | None, bytes]:
    """``GET path`` on a new connection: (the pid of the process that answered, the answer)."""
    with connect(port, supervisor, log) as client:
        answer = keep_alive_get(client, path)
        return accepting_worker(supervisor, client), answer


def test_each_process_of_shop_api_answers_the_requests_of_both(
    api_in_two_processes: tuple[int, int, Path],
) -> None:
    supervisor, port, log = api_in_two_processes
    # /health on new connections until both processes have answered some.
    health = 0
    answered: set[int | None] = set()
    deadline = time.monotonic() + 60  # the second process may still be starting
    while len(answered) < 2 and time.monotonic() < deadline:
        worker, answer = get_from_any_process(port, supervisor, log, "/health")
        assert answer.startswith(b"HTTP/1.1 200")
        health += 1
        answered.add(worker)
    assert None not in answered
    assert len(answered) == 2, f"all {health} connections went to one process"
    # Then /metrics until both have answered it: each counts every /health.
    counted: dict[int | None, float] = {}
    while len(counted) < 2 and time.monotonic() < deadline + 30:
        worker, answer = get_from_any_process(port, supervisor, log, "/metrics")
        counted[worker] = health_requests(answer)
    assert list(counted.values()) == [health, health]
