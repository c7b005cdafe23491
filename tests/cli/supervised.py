"""``serve_processes`` over an app of ``tests.cli.gil_holding_app`` in a process of its
own, as ``shop api --workers N`` runs it; stopped (killed, if it does not stop) after."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli.stack.process import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def supervised(
    factory: str, starts: Path, processes: int = 1, **options: Any
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The supervisor and its port; each app process notes its pid in ``starts``."""
    port = free_port()
    extra = "".join(f", {name}={value!r}" for name, value in options.items())
    serve = (
        "from cli.serve import serve_processes; "
        f"serve_processes('tests.cli.gil_holding_app:{factory}', {processes}, "
        f"host='127.0.0.1', port={port}{extra})"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", serve],
        cwd=ROOT,
        env={**os.environ, "GIL_APP_STARTS": str(starts)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield supervisor, port
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # A supervisor stuck in a health check does not even read its signals.
            started = starts.read_text().split() if starts.exists() else []
            for pid in (supervisor.pid, *(int(p) for p in started)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            supervisor.wait()
            raise
