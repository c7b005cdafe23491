"""The CLI calls services: no module under ``cli/`` works a database session or writes
SQL (``services/`` holds all of it, in repositories)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "cli"
DATABASE_PACKAGES = {"sqlalchemy", "sqlmodel"}
SESSION_METHODS = {
    "add",
    "add_all",
    "begin",
    "begin_nested",
    "commit",
    "connection",
    "delete",
    "exec",
    "execute",
    "fetch",
    "fetchrow",
    "fetchval",
    "flush",
    "get",
    "merge",
    "refresh",
    "rollback",
    "scalar",
    "scalars",
    "stream",
}
SQL_BUILDERS = {"select", "text", "insert", "update", "delete", "bindparam", "column", "table"}
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|TRUNCATE)\s")
# The embedded PostgreSQL supervisor creates the database itself, before there is any
# schema (or service) to go through.
BOOTSTRAP = {"stack/postgres.py"}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def database_work(source: str, *, bootstrap: bool = False) -> list[str]:
    """Where ``source`` touches the database itself: an import of SQLAlchemy or SQLModel,
    a method called on a session (or connection), an SQL builder called, SQL written."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [
                f"{line}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in DATABASE_PACKAGES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in DATABASE_PACKAGES:
                found.append(f"{line}: from {node.module} import …")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in SESSION_METHODS:
                receiver = _name(func.value).lower()
                if "session" in receiver or (not bootstrap and "conn" in receiver):
                    found.append(f"{line}: {_name(func.value)}.{func.attr}(…)")
            elif isinstance(func, ast.Name) and func.id in SQL_BUILDERS:
                found.append(f"{line}: {func.id}(…)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            sql = None if bootstrap else SQL.match(node.value)
            if sql:
                found.append(f"{line}: SQL {sql.group(1)} …")
    return found


def test_no_module_under_cli_touches_the_database_itself() -> None:
    modules = sorted(CLI.rglob("*.py"))
    assert any(path.parent.name == "seed" for path in modules)
    problems = {
        str(path.relative_to(CLI)): found
        for path in modules
        if (
            found := database_work(
                path.read_text(), bootstrap=str(path.relative_to(CLI)) in BOOTSTRAP
            )
        )
    }
    assert problems == {}


def test_the_check_finds_database_work() -> None:
    source = '''
from sqlmodel import col, select
import sqlalchemy.dialects

BACKDATE = """
WITH moved AS (SELECT 1) UPDATE orders SET created_at = now()
"""

async def run(session, sessions, conn, service):
    await session.exec(select(Order))
    self.session.add(row)
    await conn.execute(text("DELETE FROM orders"))
    async with sessions() as s:
        await service.create(s)
'''
    kinds = {
        entry.split(": ", 1)[1].removesuffix(" …").removesuffix("(…)")
        for entry in database_work(source)
    }
    assert kinds == {
        "from sqlmodel import",
        "import sqlalchemy.dialects",
        "SQL WITH",
        "SQL DELETE",
        "session.exec",
        "select",
        "session.add",
        "conn.execute",
        "text",
    }
    # Passing a session to a service, or calling the factory, is not database work.
    assert database_work("async def f(sessions, service):\n    s = sessions()\n") == []
    # The bootstrap module may run its administrative SQL on its own connection.
    admin = "async def f(conn):\n    await conn.execute('CREATE DATABASE \"x\"')\n"
    assert database_work(admin, bootstrap=True) == []
    assert database_work(admin) != []
