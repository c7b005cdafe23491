from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.logging import (
    ConsoleFormatter,
    JsonFormatter,
    _RequestIdFilter,
    logged_to_file,
    request_id_var,
)


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "shop.test", "levelname": "INFO", "msg": msg})
    for key, value in extra.items():
        setattr(record, key, value)
    _RequestIdFilter().filter(record)
    return record


def test_json_lines_carry_the_request_id_and_extras() -> None:
    token = request_id_var.set("req_123")
    try:
        line = JsonFormatter().format(_record("placed %s", order="ord_1"))
    finally:
        request_id_var.reset(token)
    payload = json.loads(line)
    assert payload["msg"] == "placed %s"
    assert payload["request_id"] == "req_123"
    assert payload["order"] == "ord_1"
    assert payload["level"] == "info"


def test_outside_a_request_there_is_no_request_id() -> None:
    payload = json.loads(JsonFormatter().format(_record("boot")))
    assert "request_id" not in payload


def test_console_lines_are_readable() -> None:
    token = request_id_var.set("req_9")
    try:
        line = ConsoleFormatter().format(_record("hello", ms=3.5))
    finally:
        request_id_var.reset(token)
    assert "INFO" in line
    assert "shop.test: hello" in line
    assert "ms=3.5" in line
    assert "request_id=req_9" in line


def test_a_logger_sent_to_a_file_stays_off_the_console(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # caplog's handler sits on the root, as the console's does
    migrations = logging.getLogger("alembic.runtime.migration")
    log_file = tmp_path / "logs" / "migrations.log"
    with logged_to_file("alembic", log_file):
        migrations.info("Running upgrade a -> b, the orders table")
    migrations.info("Running upgrade b -> c, after the block")
    written = log_file.read_text()
    assert "INFO    alembic.runtime.migration: Running upgrade a -> b, the orders table" in written
    assert "after the block" not in written
    assert [r.getMessage() for r in caplog.records] == ["Running upgrade b -> c, after the block"]
