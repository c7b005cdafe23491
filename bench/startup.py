"""How long ``shop dev`` takes to be ready (cold and warm), to stop, and what it weighs.

The issue's target: ready within 60 s on a 2-core machine; stopped within 10 s.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from cli.stack.process import free_port, free_server_ports

EXTERNAL_VARS = ("DATABASE_URL", "DB_HOST", "REDIS_URL", "TEMPORAL_ADDRESS", "SHOP_DATA_DIR")


@dataclass
class StartupSample:
    ready_seconds: float
    stop_seconds: float
    tree_rss_mib: float
    processes: int


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _one_run(data_dir: Path, timeout: float = 120) -> StartupSample:
    api_port = free_port()
    argv = [
        str(Path(sys.executable).parent / "shop"),
        "dev",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        *free_server_ports(),
    ]
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_VARS}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while not (
            _ready(f"http://127.0.0.1:{api_port}/ready") and (data_dir / "stack.env").exists()
        ):
            if proc.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"shop dev did not get ready (exit {proc.poll()})")
            time.sleep(0.05)
        ready = time.perf_counter() - started
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        rss = sum(p.memory_info().rss for p in tree if p.is_running())
        stop_started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stopped = time.perf_counter() - stop_started
    finally:
        if proc.poll() is None:
            proc.kill()
    return StartupSample(ready, stopped, rss / 2**20, len(tree))


def run(runs: int = 3) -> list[str]:
    """Cold start once (initdb, empty Temporal DB), then ``runs`` warm restarts."""
    with tempfile.TemporaryDirectory(prefix="shop-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        cold = _one_run(data_dir)
        warm = [_one_run(data_dir) for _ in range(runs)]
    lines = [
        "shop dev startup (ready = /ready answers 200 and stack.env is written)",
        f"  cold start (initdb + empty Temporal DB): {cold.ready_seconds:6.2f} s to ready, "
        f"{cold.stop_seconds:5.2f} s to stop",
        f"  warm start, median of {runs}:              "
        f"{statistics.median(s.ready_seconds for s in warm):6.2f} s to ready, "
        f"{statistics.median(s.stop_seconds for s in warm):5.2f} s to stop",
        f"  resident memory of the whole tree:       {cold.tree_rss_mib:6.0f} MiB "
        f"({cold.processes} processes, 1 worker)",
    ]
    return lines
