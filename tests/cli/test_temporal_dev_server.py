"""``shop dev``'s Temporal server keeps its SQLite file in write-ahead-log mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cli.stack.process import free_port
from cli.stack.temporal import TemporalDevServer


def test_the_dev_servers_database_is_in_wal_mode(tmp_path: Path) -> None:
    db_file = tmp_path / "temporal.db"
    server = TemporalDevServer(db_file, free_port(), None, log_path=tmp_path / "temporal.log")
    server.start()
    try:
        # WAL is a property of the file itself: another connection reads it back.
        with sqlite3.connect(db_file) as connection:
            [mode] = connection.execute("PRAGMA journal_mode").fetchone()
        assert mode == "wal"
        assert db_file.with_name("temporal.db-wal").exists()
    finally:
        server.stop()
