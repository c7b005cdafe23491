"""The configuration every benchmark prints first: figures mean little without it."""

from __future__ import annotations

import os
import platform
import sys
from contextlib import suppress
from urllib.parse import urlsplit

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


def sandboxes(settings: Settings) -> str:
    """Where the providers an order calls answer: the sandboxes are mounted on the API
    (``/_sandbox/…``), so unless a provider's key is set they share the measured cores."""
    stripe = (
        "real Stripe"
        if settings.stripe_secret_key
        else f"sandbox at {settings.api_base_url}/_sandbox/stripe"
    )
    mail = (
        f"sandbox at {settings.resolved_sendgrid_base_url}"
        if settings.email_uses_sandbox
        else "real SendGrid"
    )
    shared = settings.stripe_secret_key is None or settings.email_uses_sandbox
    note = " (sandboxes run in the API processes)" if shared else ""
    return f"providers: Stripe {stripe}; SendGrid {mail}{note}"


def header(settings: Settings | None, **parameters: object) -> list[str]:
    lines = [machine()]
    if settings is not None:
        lines.append(stack(settings))
    if parameters:
        lines.append("run: " + ", ".join(f"{k}={v}" for k, v in parameters.items()))
    return lines


def api_processes(base_url: str) -> list[psutil.Process]:
    """The processes accepting on the API's port, when it is on this host (uvicorn's
    supervisor and its workers share the listening socket); [] if they cannot be seen."""
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return []
    try:
        pids = {
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == parts.port and c.pid
        }
    except psutil.Error:
        return []
    found = []
    for pid in sorted(pids):
        with suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found
