"""What an order costs the stack, per process and in workflows, during a timed part.

The machine is shared, so throughput alone says little: CPU-seconds per order of each of
the stack's processes (psutil, when ``shop dev`` runs the stack on this host) and the
workflows the orders set off (Temporal's visibility: how many of each type started in
the timed part, and their history events) say where the work is, whatever else runs.

The processes are found from the API's port: above its processes is ``shop dev``, whose
children are the Temporal server, PostgreSQL, Redis, the worker(s) and the API, told
apart by their command lines. A process's CPU counts its descendants, live ones
and those it reaped (PostgreSQL's backends come and go).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from temporalio.client import Client

from bench.environment import api_processes
from core.settings import Settings

TEMPORAL, WORKER, API, POSTGRES, REDIS = "Temporal server", "worker", "API", "PostgreSQL", "Redis"
ROLES = (TEMPORAL, WORKER, API, POSTGRES, REDIS)
# The benchmark's own process: its clients (and, for the bare workflow, its worker).
BENCH = "bench process"
# The last orders' fulfilments and event fan-outs start a moment after they settle.
CENSUS_SETTLE_SECONDS = 2.0


def role_of(cmdline: list[str]) -> str | None:
    """Which part of a ``shop dev`` stack a child of its supervisor is (None: not ours)."""
    if not cmdline:
        return None
    # Redis rewrites its title: its whole command line can be one string.
    program = Path(cmdline[0].split(" ")[0]).name
    if program == "temporal":
        return TEMPORAL
    if program == "postgres":
        return POSTGRES
    if program == "redis-server":
        return REDIS
    command = cmdline[1:4]
    if command[:2] == ["-m", "cli.main"] and len(command) == 3:
        return {"worker": WORKER, "api": API}.get(command[2])
    return None


def _tree_cpu(root: psutil.Process) -> float:
    """User and system CPU of ``root`` and its descendants, including reaped children."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with suppress(psutil.Error):  # a backend that ended meanwhile: its parent has it
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass(frozen=True)
class StackProcesses:
    """The stack's processes by role (each a root whose descendants count with it)."""

    roles: dict[str, list[psutil.Process]]

    def cpu_seconds(self) -> dict[str, float]:
        return {
            role: sum(_tree_cpu(p) for p in processes) for role, processes in self.roles.items()
        }


def _holds_listener(process: psutil.Process, port: int) -> bool:
    with suppress(psutil.Error):
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in process.net_connections("tcp")
        )
    return False


def _listener_roots(processes: list[psutil.Process], port: int) -> list[psutil.Process]:
    """The top-most holders of the listening socket above ``processes``: the system's
    socket table names one of the processes that share a socket (a uvicorn worker, say),
    and the supervisor above it, counted with its children, is the whole server."""
    roots: dict[int, psutil.Process] = {}
    for process in processes:
        root = process
        with suppress(psutil.Error):
            for parent in process.parents():  # nearest first
                if not _holds_listener(parent, port):
                    break
                root = parent
        roots.setdefault(root.pid, root)
    return list(roots.values())


def _dev_supervisor(process: psutil.Process) -> psutil.Process | None:
    """The ``shop dev`` process above ``process``, if there is one."""
    with suppress(psutil.Error):
        for ancestor in process.parents():
            if "dev" in ancestor.cmdline()[1:3]:
                return ancestor
    return None


def stack_processes(base_url: str) -> StackProcesses:
    """The processes of the stack serving ``base_url``, when it runs on this host: every
    child of its ``shop dev`` by role, or the API's alone without one (an API in a test's
    own process). The listening socket names one API process only (uvicorn's workers
    share it), so a stack's API is its supervisor's API child with all its workers."""
    api = api_processes(base_url)
    if not api:
        return StackProcesses({})
    supervisor = _dev_supervisor(api[0])
    if supervisor is None:
        return StackProcesses({API: _listener_roots(api, urlsplit(base_url).port or 0)})
    roles: dict[str, list[psutil.Process]] = {}
    with suppress(psutil.Error):
        for child in supervisor.children():
            role = role_of(child.cmdline())
            if role is not None:
                roles.setdefault(role, []).append(child)
    return StackProcesses(roles)


def own_cpu_seconds() -> float:
    """User and system CPU of this (the benchmark's) process so far."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each role used between two readings, in ``ROLES`` order."""
    return {role: after[role] - before[role] for role in ROLES if role in before and role in after}


@contextmanager
def cpu_during(processes: StackProcesses) -> Iterator[dict[str, float]]:
    """Yields a dict that holds, once the block is over, each role's CPU seconds in it."""
    before = processes.cpu_seconds()
    used: dict[str, float] = {}
    yield used
    used.update(cpu_used(before, processes.cpu_seconds()))


@dataclass(frozen=True)
class WorkflowCensus:
    """Workflows started in a window, by type: how many, and their history events."""

    started: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    def lines(self, orders: int) -> list[str]:
        if not orders or not self.started:
            return []
        per = ", ".join(
            f"{kind} {count / orders:.2f} ({self.events[kind] / count:.0f} events)"
            for kind, count in self.started.most_common()
        )
        total = sum(self.started.values()) / orders
        events = sum(self.events.values()) / orders
        return [f"  workflows started per order: {total:.2f}, {events:.0f} history events: {per}"]


async def workflows_started(client: Client, since: datetime, until: datetime) -> WorkflowCensus:
    """The workflows started from ``since`` to ``until`` (history lengths as of now)."""
    query = f"StartTime >= '{since.isoformat()}' AND StartTime <= '{until.isoformat()}'"
    census = WorkflowCensus()
    async for execution in client.list_workflows(query):
        length = execution.history_length
        if not length:
            # Visibility records the length when a workflow closes; a running one is asked.
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            length = (await handle.describe()).history_length
        census.started[execution.workflow_type] += 1
        census.events[execution.workflow_type] += length
    return census


async def census_since(settings: Settings, since: datetime) -> WorkflowCensus:
    """The workflows started on the stack's Temporal server from ``since`` until now, after
    ``CENSUS_SETTLE_SECONDS`` for the last orders' follow-on workflows to start."""
    from temporal.client import connect

    client = await connect(settings)
    await asyncio.sleep(CENSUS_SETTLE_SECONDS)
    return await workflows_started(client, since, datetime.now(UTC))


def cpu_lines(used: dict[str, float], orders: int) -> list[str]:
    """``used``'s CPU seconds per order, by process and in total."""
    if not used or not orders:
        return []
    per = ", ".join(f"{role} {seconds / orders * 1000:.0f} ms" for role, seconds in used.items())
    total = sum(used.values()) / orders * 1000
    return [f"  CPU per order by process: {per}; all {total:.0f} ms"]
