"""The ``shop`` command: the Typer app assembled from its command modules."""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from cli.admin import admin_app
from cli.benchmarks import bench_app
from cli.migrate import migrate_app
from cli.options import err_console
from cli.processes import api, dev, worker
from cli.search import search_app
from cli.seed_command import seed
from cli.unreachable import unreachable

app = typer.Typer(
    name="shop",
    help="Shopweave: the dev stack, the API, workers, migrations and admin tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(dev)
app.command()(api)
app.command()(worker)
app.command()(seed)
app.add_typer(migrate_app, name="migrate")
app.add_typer(admin_app, name="admin")
app.add_typer(bench_app, name="bench")
app.add_typer(search_app, name="search")


def main() -> None:
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        line = unreachable(exc)
        if line is None:
            raise
        err_console.print(f"[red]error:[/] {escape(line)}")
        code = 1
    # The Temporal SDK's Rust threads can abort CPython's finalisation ("PyGILState_Release:
    # thread state must be current", temporalio/sdk-python#300), turning a clean exit into
    # SIGABRT. Everything is closed by now, so skip finalisation.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
