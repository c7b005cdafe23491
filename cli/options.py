"""What every ``shop`` command shares: the ``--data-dir`` option, the settings it names,
the consoles, and the one-line failure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.logging import configure_logging
from core.settings import Settings, load_settings

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data dir of the `shop dev` stack to use (default: SHOP_DATA_DIR or ./.shop).",
        show_default=False,
    ),
]


def settings_for(data_dir: Path | None) -> Settings:
    """The settings of the stack in DATA_DIR, with logging and password hashing set up."""
    from services.passwords import configure_hashing

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_format)
    configure_hashing(settings)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print MESSAGE as the command's one-line error; raise what it returns."""
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)
