"""Child processes the stack supervises: started in their own process group, stopped in
order, and killed by the kernel if the supervisor itself dies (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


class StackError(Exception):
    """A problem the user can fix; printed as one line, never as a traceback."""


def die_with_parent() -> None:
    """Get SIGTERM when the parent process dies (so nothing outlives the supervisor)."""
    # Linux only; elsewhere the supervisor's own shutdown is the only guarantee.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def scripts_dir() -> Path:
    """Where pip put the ``temporal``/``redis-server`` scripts of this environment."""
    return Path(sysconfig.get_path("scripts"))


def find_binary(name: str) -> Path:
    for candidate in (Path(sys.executable).parent / name, scripts_dir() / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise StackError(f"{name} not found next to {sys.executable}; run `make install`")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_port_free(port: int, what: str, flag: str) -> None:
    if port_in_use(port):
        raise StackError(
            f"port {port} ({what}) is already in use: stop what uses it or pass {flag}"
        )


# Ports handed out by free_port, never handed out twice by one process.
_HANDED_OUT: set[int] = set()
# Below Linux's ephemeral range (32768-60999): a port chosen here cannot be taken by an
# outgoing connection between being chosen and being bound by the server it is for.
PORT_RANGE = range(20_000, 32_768)
_port_range = PORT_RANGE


def port_slice(index: int, count: int) -> range:
    """The ``index``-th of ``count`` equal, disjoint slices of the ports free_port uses."""
    if not 0 <= index < count:
        raise ValueError(f"slice {index} of {count} does not exist")
    size = len(PORT_RANGE) // count
    return PORT_RANGE[index * size : (index + 1) * size]


def share_port_range(index: int, count: int) -> None:
    """Hand out ports from ``port_slice(index, count)`` only: processes choosing ports at
    the same time (the test suite's workers) could otherwise both choose a port that
    neither has bound yet."""
    global _port_range
    _port_range = port_slice(index, count)


def port_range() -> range:
    """The ports free_port chooses from in this process."""
    return _port_range


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (nor lingers on) right now."""
    while True:
        port = random.choice(_port_range)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def free_server_ports() -> list[str]:
    """`shop dev` flags giving each embedded server (all but the API) a free port."""
    return [
        arg
        for flag in ("--temporal-port", "--ui-port", "--postgres-port", "--redis-port")
        for arg in (flag, str(free_port()))
    ]


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.exited():
            raise StackError(
                f"{what} exited with code {process.returncode()} while starting; "
                f"see {process.log_path}"
            )
        if check():
            return
        time.sleep(interval)
    raise StackError(f"{what} did not become ready within {timeout:g}s; see the logs")


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.user = user
        self.stop_signal = stop_signal
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def process(self) -> ManagedProcess:
        """A bare child is its own process (the interface embedded servers share)."""
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self._log.write(f"\n--- {time.strftime('%F %T')} starting {self.name}\n".encode())
        self._log.flush()
        uid: int | None = None
        gid: int | None = None
        groups: list[int] | None = None
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            uid, gid, groups = entry.pw_uid, entry.pw_gid, []
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            # Own process group: Ctrl-C reaches only the supervisor, which stops
            # children in reverse start order.
            start_new_session=True,
            preexec_fn=die_with_parent,
            user=uid,
            group=gid,
            extra_groups=groups,
        )

    def exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def stop(self, timeout: float) -> None:
        """Ask politely, then kill the whole process group if it does not go in time."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal)
            try:
                proc.wait(timeout=max(timeout, 0.1))
            except subprocess.TimeoutExpired:
                self._kill_group(proc.pid)
                proc.wait(timeout=5)
        # Anything the child left in its group (e.g. postgres backends) goes too.
        self._kill_group(proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
