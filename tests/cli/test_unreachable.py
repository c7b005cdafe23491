"""A ``shop`` command whose database or Redis does not answer says so in one line, not
with the driver's traceback (a ``stack.env`` left by a killed ``shop dev``, or a
``DATABASE_URL`` pointing nowhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.unreachable import unreachable
from core.db import DatabaseUnreachable

SHOP = str(Path(sys.executable).parent / "shop")
NOWHERE = "postgresql+asyncpg://nobody@127.0.0.1:1/shop"  # nothing listens on port 1
SERVER_VARS = ("DATABASE_URL", "DB_HOST", "REDIS_URL", "TEMPORAL_ADDRESS", "SHOP_DATA_DIR")


@pytest.mark.parametrize(
    "command", [["migrate"], ["search", "reindex"], ["seed", "--products", "1", "--users", "1"]]
)
def test_a_database_that_refuses_is_one_line(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    result = subprocess.run(
        [SHOP, *command, "--data-dir", str(tmp_path)],
        env=env | {"DATABASE_URL": NOWHERE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: cannot connect: [Errno 111] Connect call failed")
    assert "('127.0.0.1', 1)" in lines[0]
    assert "DATABASE_URL" in lines[0]


class DriverError(Exception):
    """Stands for SQLAlchemy's or redis-py's wrapper of the socket's error."""


def _raised(outer: Exception, inner: BaseException, *, cause: bool) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            if cause:
                raise outer from exc
            raise outer  # noqa: B904 - the implicit context, as redis-py raises it
    except Exception as raised:
        return raised


def test_a_failed_connection_is_found_in_the_chain() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    for cause in (True, False):
        line = unreachable(_raised(DriverError("wrapped"), refused, cause=cause))
        assert line is not None
        assert line.startswith("cannot connect: [Errno 111] Connect call failed")
    # The database's connection names its failure again (core.db.DatabaseUnreachable):
    # the line is the socket's own error.
    named = _raised(
        DatabaseUnreachable(f"the database could not be reached: {refused}"), refused, cause=True
    )
    line = unreachable(_raised(DriverError("wrapped"), named, cause=True))
    assert line is not None
    assert line.startswith("cannot connect: [Errno 111] Connect call failed"), line
    every = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 1), …")
    assert unreachable(_raised(DriverError("wrapped"), every, cause=True)) is not None


def test_other_errors_keep_their_traceback() -> None:
    assert unreachable(ValueError("a bug")) is None
    assert unreachable(TimeoutError("a command's own wait")) is None
    assert unreachable(_raised(DriverError("x"), FileNotFoundError("seed.csv"), cause=True)) is None
