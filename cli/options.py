"""What every ``shop`` command shares: the ``--data-dir`` option, the settings it names,
the consoles, and the one-line failure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
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

    try:
        settings = load_settings(data_dir)
    except ValidationError as exc:
        raise fail("\n".join(_invalid_setting(error) for error in exc.errors())) from None
    configure_logging(settings.log_level, settings.log_format)
    configure_hashing(settings)
    return settings


def _invalid_setting(error: ErrorDetails) -> str:
    """A setting's validation error as one line: its variable, what is wrong with it."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:  # a rule over several settings names them in its message
        return message
    return f"{str(error['loc'][0]).upper()}: {message}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print MESSAGE as the command's error, ``error:`` before each of its lines (one
    line per problem); raise what it returns."""
    for line in message.splitlines() or [message]:
        err_console.print(f"[red]error:[/] {line}")
    return typer.Exit(code)
