"""Test processes started as ``python -m MODULE``: a worker, or an API request, that a
test SIGKILLs mid-way."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start_module(
    module: str, args: list[str], log: Path, ready: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m module args…`` from the repository root in a session of its own, its
    output in ``log``; returns once it has printed ``ready`` (fails the test if it exits
    first or takes over a minute)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{module} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return proc
