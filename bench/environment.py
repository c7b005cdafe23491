"""The configuration every benchmark prints first: figures mean little without it."""

from __future__ import annotations

import os
import platform
import sys

import psutil

from core.settings import Settings


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"machine: {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} "
        f"{platform.machine()}, Python {sys.version.split()[0]}"
    )


def stack(settings: Settings) -> str:
    """The stack a benchmark runs against, as `shop dev` recorded it in stack.env."""
    temporal = settings.temporal_address or "none"
    embedded = "(embedded dev server, SQLite)" if settings.temporal_ui_url else "(external)"
    return (
        f"stack: {settings.shop_api_workers} API process(es), "
        f"{settings.shop_dev_workers} worker process(es), Temporal {temporal} {embedded}"
    )


def header(settings: Settings | None, **parameters: object) -> list[str]:
    lines = [machine()]
    if settings is not None:
        lines.append(stack(settings))
    if parameters:
        lines.append("run: " + ", ".join(f"{k}={v}" for k, v in parameters.items()))
    return lines
