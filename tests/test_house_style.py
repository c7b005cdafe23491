"""House rules a linter does not enforce on its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [ROOT / name for name in listed.stdout.split()]


def test_the_formatter_owns_the_layout() -> None:
    """No `fmt: skip` / `fmt: off`: one layout, ruff format's (STYLE, issue 10)."""
    files = _python_files()
    assert len(files) > 100
    marker = "fmt" + ": "  # not spelled out, so this file does not match itself
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if f"# {marker}skip" in line or f"# {marker}off" in line
    ]
    assert offenders == []


def test_row_locks_are_taken_through_core_db_locked() -> None:
    """``core.db.locked`` locks and reads the rows as committed (``populate_existing``):
    a bare ``with_for_update`` leaves the session's earlier copy of a row as it was, and
    a decision taken under the lock on that copy is stale (two parcels shipping at once
    left their order partially shipped)."""
    bare = ".with_for" + "_update("  # not spelled out, so this file does not match itself
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _python_files()
        if path != ROOT / "core" / "db.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if bare in line
    ]
    assert offenders == []


def test_the_package_metadata_uses_an_spdx_license_string() -> None:
    """A `license = { text = … }` table makes `make install` print setuptools'
    deprecation warnings (issue 11); PEP 639 wants the SPDX expression."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
