"""``shop migrate``: apply or create database migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import DataDir, console, fail, settings_for
from core.errors import DependencyUnavailable

migrate_app = typer.Typer(help="Apply or create database migrations.", invoke_without_command=True)


def _database_url(data_dir: Path | None) -> str:
    from core.db import require_database_url

    try:
        return require_database_url(settings_for(data_dir))
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    data_dir: DataDir = None,
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
) -> None:
    """Apply migrations up to REVISION (head by default)."""
    if ctx.invoked_subcommand is not None:
        return
    from migrations.runner import upgrade

    upgrade(_database_url(data_dir), revision)
    console.print(f"database migrated to {revision}")


@migrate_app.command("new")
def migrate_new(
    message: Annotated[str, typer.Argument(help="What the migration does.")],
    data_dir: DataDir = None,
) -> None:
    """Autogenerate a migration from the models (against an up-to-date database)."""
    from migrations.runner import new_revision

    new_revision(_database_url(data_dir), message)
