"""Serving the API inside an existing event loop (tests and benchmarks)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from cli.stack.process import die_with_parent
from core.logging import configure_logging
from core.settings import Settings, load_settings

# The request line and headers uvicorn reads before answering 400 itself. Its 16 KiB
# default is less than a search of the 10,000 characters the API accepts (up to 12 bytes
# each once percent-encoded), which then got a bare 400 that is not ours.
MAX_REQUEST_HEAD_BYTES = 256 * 1024
# The API's HTTP parser and event loop, named rather than left to uvicorn's "auto":
# h11, because httptools refuses a request head as long as the longest search the API
# accepts (h11 takes up to MAX_REQUEST_HEAD_BYTES); uvloop, because the event loop's own
# work per request is a third of asyncio's (GET /health from 32 keep-alive clients,
# 2 processes, same machine and minute: 1,570 req/s on asyncio, 5,150 on uvloop).
API_SERVER = {"http": "h11", "loop": "uvloop"}


class TcpConfig(uvicorn.Config):
    """uvicorn's ``Config`` whose listening socket says it is TCP.

    With ``--workers N`` uvicorn 0.54.0 binds the socket itself, as
    ``socket.socket(family=AF_INET)``: its ``proto`` is 0, not ``IPPROTO_TCP``. Every
    worker's asyncio server accepts on it, and each accepted socket inherits that
    ``proto``; asyncio sets ``TCP_NODELAY`` on a new connection only when its socket says
    ``IPPROTO_TCP`` (``asyncio.base_events._set_nodelay``). So the multi-process API
    answered with Nagle's algorithm on: a response written in two parts (headers, then
    body) waited for the client's delayed ACK, about 40 ms on every keep-alive request.
    One process is not affected (``loop.create_server(host, port)`` takes ``proto``
    from ``getaddrinfo``). Rewrapping the bound descriptor lets the kernel say what it
    is (``SO_PROTOCOL``), so accepted connections get ``TCP_NODELAY`` as they should.
    """

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
            return sock
        tcp = socket.socket(fileno=sock.detach())  # family, type and proto from the kernel
        tcp.set_inheritable(True)
        return tcp


# How long uvicorn's supervisor waits for a process to answer its health ping before it
# kills it (uvicorn's default is 5 s). A process answers from a thread, which waits for
# the GIL while the app imports; on two busy cores that took longer than 5 s, and the
# supervisor killed and restarted processes that were only starting (`shop dev` never
# came up under load). A hung process is still replaced, a little later.
WORKER_HEALTHCHECK_SECONDS = 60


def processes_config(app: str, processes: int, **options: Any) -> TcpConfig:
    """The supervisor's configuration for ``processes`` copies of the app factory."""
    options.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_SECONDS)
    return TcpConfig(app, factory=True, workers=processes, **options)


def serve_processes(app: str, processes: int, **options: Any) -> None:
    """``uvicorn.run(app, workers=processes, factory=True, **options)``, with
    ``TcpConfig``'s socket: the API as ``shop api --workers N`` (and ``shop dev``)
    serves it. Blocks until the supervisor is stopped."""
    config = processes_config(app, processes, **options)
    Multiprocess(config, sockets=[config.bind_socket()]).run()


@asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[str]:
    """The API on 127.0.0.1:``SHOP_API_PORT`` until the block exits; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=settings.shop_api_port,
        log_config=None,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        **API_SERVER,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield settings.api_base_url
    finally:
        server.should_exit = True
        await task


def api_worker_app() -> FastAPI:
    """One of ``shop api --workers N``'s processes: dies with its supervisor."""
    die_with_parent()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
