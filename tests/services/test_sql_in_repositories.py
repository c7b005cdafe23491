"""All SQL in repositories: no statement is built or run outside a ``*Repository`` class.

A static check over ``services/``: a call to a SQL statement builder imported from
SQLAlchemy or SQLModel (``select``, ``insert``, ``update``, ``delete``, ``text``), or to
a session method that runs or stages SQL (``exec``, ``execute``, ``get``, ``add``, …),
counts as SQL; outside a class whose name ends in ``Repository`` it is a violation.
Sessions are still passed around (to repositories, to ``publish`` and the analytics
recorder) and transactions are still opened and committed by services: those are the
unit of work, not SQL.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"

STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text"}
SQL_MODULES = ("sqlalchemy", "sqlmodel")
SESSION_METHODS = {
    "exec",
    "execute",
    "get",
    "scalar",
    "scalars",
    "stream",
    "stream_scalars",
    "add",
    "add_all",
    "delete",
    "merge",
    "refresh",
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}"


def _receiver(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.classes: list[str] = []
        self.builders: set[str] = set()
        self.found: list[Violation] = []

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.split(".")[0] in SQL_MODULES:
            for alias in node.names:
                if alias.name in STATEMENT_BUILDERS:
                    self.builders.add(alias.asname or alias.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        call = None
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.builders:
            call = f"{func.id}(…)"
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in SESSION_METHODS
            and _receiver(func.value).endswith("session")
        ):
            call = f"{_receiver(func.value)}.{func.attr}(…)"
        if call and not any(name.endswith("Repository") for name in self.classes):
            self.found.append(Violation(self.path, node.lineno, call))
        self.generic_visit(node)


def sql_outside_repositories(source: str, path: str) -> list[Violation]:
    finder = _Finder(path)
    finder.visit(ast.parse(source))
    return finder.found


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in SERVICES.rglob("*.py"))


@pytest.mark.parametrize("path", _modules())
def test_services_run_sql_only_in_repositories(path: str) -> None:
    found = sql_outside_repositories((ROOT / path).read_text(), path)
    assert not found, "SQL outside a repository:\n" + "\n".join(map(str, found))


def test_the_check_finds_sql_wherever_it_hides() -> None:
    source = """
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import select


class ThingRepository:
    async def fine(self) -> None:
        await self.session.exec(select(Thing))


class ThingService:
    async def run(self) -> None:
        await self.session.exec(select(Thing))
        self.session.add(Thing())
        await session.get(Thing, "x")
        await self.session.execute(pg_insert(Thing).values())

    def nested(self) -> None:
        class Helper:
            def q(self) -> object:
                return text("SELECT 1")


async def helper(session) -> None:
    await session.scalar(select(Thing.id))
    {}.get("not sql")
"""
    found = [(v.line, v.call) for v in sql_outside_repositories(source, "x.py")]
    assert found == [
        (14, "session.exec(…)"),
        (14, "select(…)"),
        (15, "session.add(…)"),
        (16, "session.get(…)"),
        (17, "session.execute(…)"),
        (17, "pg_insert(…)"),
        (22, "text(…)"),
        (26, "session.scalar(…)"),
        (26, "select(…)"),
    ]
