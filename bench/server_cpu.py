"""CPU time the measured servers spend per request.

On a machine shared with other work, throughput and latency measure the neighbours as
much as the code (the same hello world gave 364 and 15,575 req/s on different
afternoons); the CPU seconds a server process uses for the requests it answers move far
less. The processes are found by the port they listen on (PostgreSQL's backends as the
children of the process listening on its port); a process that exits during a workload
is not counted. Needs to see other processes' sockets (root, or the same user on Linux).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil


@dataclass(frozen=True)
class ServerGroup:
    name: str
    port: int
    # Count the listening process's children too (PostgreSQL's backends).
    children: bool = False


def groups_of(api_url: str, database_url: str | None, redis_url: str | None) -> list[ServerGroup]:
    """The API's processes, and PostgreSQL's and Redis's when they run on this machine."""
    groups = [ServerGroup("API", urlsplit(api_url).port or 80)]
    for name, url, children in (("PostgreSQL", database_url, True), ("Redis", redis_url, False)):
        parts = urlsplit(url or "")
        if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
            groups.append(ServerGroup(name, parts.port, children))
    return groups


def _listening(port: int) -> list[psutil.Process]:
    pids = {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    found = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


class ServerCpu:
    def __init__(self, groups: Sequence[ServerGroup]) -> None:
        self.groups = list(groups)

    def _sample(self) -> dict[int, tuple[str, float]]:
        """CPU seconds (user + system) so far of every process of every group, by pid."""
        seen: dict[int, tuple[str, float]] = {}
        for group in self.groups:
            processes = _listening(group.port)
            if group.children:
                for parent in list(processes):
                    with contextlib.suppress(psutil.Error):
                        processes.extend(parent.children(recursive=True))
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    seen[process.pid] = (group.name, times.user + times.system)
        return seen

    @contextmanager
    def measuring(self) -> Iterator[dict[str, float]]:
        """Yields a dict that holds, once the block is over, each group's CPU seconds."""
        before = self._sample()
        used: dict[str, float] = {group.name: 0.0 for group in self.groups}
        yield used
        for pid, (name, seconds) in self._sample().items():
            used[name] += seconds - before.get(pid, (name, 0.0))[1]


def per_request_line(label: str, cpu: dict[str, float], requests: int) -> str:
    parts = ", ".join(f"{name} {seconds * 1000 / requests:.2f}" for name, seconds in cpu.items())
    return f"  {label:<18}{parts}"
