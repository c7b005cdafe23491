"""``shop dev``, ``shop api`` and ``shop worker``: the processes that run the system."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from cli.options import DataDir, console, fail, settings_for
from core.errors import DependencyUnavailable
from core.logging import configure_logging
from core.production import check_production
from core.settings import Settings
from core.telemetry import ProcessRole


def dev(
    data_dir: DataDir = None,
    api_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port of the API (default: SHOP_API_PORT, 3001)."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to start.")] = 1,
    api_workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="API processes (default: SHOP_API_WORKERS, else 2 on 2+ cores, else 1).",
        ),
    ] = None,
    temporal_port: Annotated[int, typer.Option(help="gRPC port of Temporal.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Port of the Temporal web UI (0: none).")] = 8233,
    postgres_port: Annotated[int, typer.Option(help="Port of embedded PostgreSQL.")] = 54329,
    redis_port: Annotated[int, typer.Option(help="Port of embedded Redis.")] = 63799,
) -> None:
    """Run the whole system: PostgreSQL, Redis, Temporal, worker(s) and the API."""
    from cli.stack.dev import DevOptions, DevStack
    from cli.stack.process import StackError

    # Not load_settings: a stack.env left by a killed `shop dev` must not steer this one.
    settings = Settings() if data_dir is None else Settings(shop_data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_format)
    if api_workers is None and "shop_api_workers" in settings.model_fields_set:
        api_workers = settings.shop_api_workers
    options = DevOptions(
        data_dir=settings.shop_data_dir,
        api_port=api_port or settings.shop_api_port,
        workers=workers,
        api_workers=api_workers or min(2, os.cpu_count() or 1),
        temporal_port=temporal_port,
        ui_port=ui_port,
        postgres_port=postgres_port,
        redis_port=redis_port,
    )
    try:
        code = DevStack(options, settings, console).run()
    except StackError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)


def api(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SHOP_API_PORT, 3001).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Processes (default SHOP_API_WORKERS, 1)."),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn (several processes with --workers)."""
    import uvicorn

    from api.app import create_app
    from cli.serve import api_server_options, serve_processes, settle_heap

    settings = settings_for(data_dir)
    try:
        # Before uvicorn: its lifespan would print a traceback of the first one only.
        check_production(settings, ProcessRole.API)
        application = create_app(settings)
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None
    processes = workers or settings.shop_api_workers
    common = {
        "host": host or settings.shop_api_host,
        "port": port or settings.shop_api_port,
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 5,
        **api_server_options(settings),
    }
    if processes == 1:
        settle_heap(application)
        uvicorn.run(application, **common)
        return
    # Each process builds its own app from the same settings (the data dir by env).
    if data_dir is not None:
        os.environ["SHOP_DATA_DIR"] = str(data_dir)
    os.environ["SHOP_API_PORT"] = str(common["port"])
    serve_processes("cli.serve:api_worker_app", processes, **common)


def worker(
    data_dir: DataDir = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Task queue to serve (repeatable; default: all)."),
    ] = None,
) -> None:
    """Run a worker process on the given task queues (all of them by default)."""
    from temporal.queues import ALL_QUEUES, TaskQueue
    from workers.main import run_worker

    settings = settings_for(data_dir)
    try:
        queues = [TaskQueue(q) for q in queue] if queue else list(ALL_QUEUES)
    except ValueError:
        names = ", ".join(ALL_QUEUES)
        raise fail(f"unknown queue in {queue}; the queues are {names}") from None
    try:
        asyncio.run(run_worker(settings, queues))
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None
