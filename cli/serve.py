"""Serving the API inside an existing event loop (tests and benchmarks)."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from cli.stack.process import die_with_parent
from core.logging import configure_logging
from core.settings import Settings, load_settings

# The longest request head (request line and headers) the API reads; a longer one gets
# uvicorn's bare 400 and the connection is closed. httptools' own URL parser refuses a
# URL over 65,535 bytes; the longest search the API accepts (SEARCH_MAX_LENGTH, 500
# characters, at most 12 bytes each percent-encoded) is 6 KB.
MAX_REQUEST_HEAD_BYTES = 64 * 1024
# prometheus_client's switch to its multiprocess mode (Settings.prometheus_multiproc_dir).
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over ``max_head_bytes``.

    uvicorn bounds a head only under h11 (``h11_max_incomplete_event_size``); under
    httptools it reads headers for as long as a client sends them. Bytes are counted
    from the end of one request (or the connection's start) to the end of the next
    one's headers, so a body is never counted: a chunk that arrives while the head is
    read may carry the body too (a client writes a small request in one piece), so past
    the budget only the bytes that still fit are parsed, and the rest is read on only if
    the head ended among them. (Counting whole chunks refused every request whose head
    and body came together and passed 64 KiB, an analytics batch of 77 KB say, with the
    bare 400 meant for endless headers.)"""

    max_head_bytes = MAX_REQUEST_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._messages = 0

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        messages = self._messages
        self._head_bytes = self.max_head_bytes
        if room > 0:
            super().data_received(data[:room])
            if self.transport.is_closing():
                return
        if self._in_head and self._messages == messages:
            self.logger.warning("Request head over %d bytes refused.", self.max_head_bytes)
            self.send_400_response("Request head too large.")
            return
        # The head ended within the budget: the rest is its body (or the next request,
        # whose head is counted afresh).
        self.data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._messages += 1
        super().on_message_complete()


# How long an API process sleeps after accepting a connection, when several processes
# share the listening socket: a nanosecond asked, as libuv's UV_TCP_SINGLE_ACCEPT slept;
# the kernel rounds it up to the thread's timer slack (50 us by default) and runs another
# task on the core meanwhile.
ACCEPT_TURN_SECONDS = 1e-9


def pause_after_accept() -> None:
    """Blocking on purpose: the point is to leave the core, not to run another task."""
    time.sleep(ACCEPT_TURN_SECONDS)


class AcceptTurnsProtocol(BoundedHttpToolsProtocol):
    """``BoundedHttpToolsProtocol``, and with several processes on one listening socket
    (``shop api --workers N``, so ``shop dev``) each process gives up its core for a
    moment after it accepts a connection, so that the next one goes to another process.

    The processes race to accept. libuv (1.52, in uvloop 0.23) accepts one connection per
    turn of its loop, and every waiting process is woken by a new one, but the process
    that has just accepted is still on a core, and the others have to be scheduled first:
    on two busy cores it won the next connection too. 32 keep-alive clients opened at once
    (the catalogue bench's) ended up 32/0, 27/5, 31/1 ... between two processes, and the
    crowded one's p95 was 1.4-4x the other's (docs/benchmarks.md *Catalogue reads*, which
    also has the spreads since). libuv's own switch for this, ``UV_TCP_SINGLE_ACCEPT`` (a
    1 ns ``nanosleep`` after each accept), went with its accept loop (libuv PR #3696,
    2022): the libuv 1.52 here does not read it. The same sleep here evens most spreads.
    It costs the accepting process 0.05-0.15 ms of its loop per new connection, which
    keep-alive clients open once; one process alone never sleeps.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.config.workers > 1:
            pause_after_accept()


# The API's HTTP parser and event loop, named rather than left to uvicorn's "auto":
# httptools (bounded, above, and taking turns to accept), whose parsing is C where h11's
# is Python; uvloop, because the event loop's own work per request is a third of
# asyncio's (GET /health from 32 keep-alive clients, 2 processes, same machine and
# minute: 1,570 req/s on asyncio, 5,150 on uvloop).
API_SERVER: dict[str, Any] = {"http": AcceptTurnsProtocol, "loop": "uvloop"}


def api_server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the API, as ``shop api`` (``shop dev``) and ``serve_api``
    (tests, benchmarks) run it: ``API_SERVER`` and the idle keep-alive timeout
    (``API_KEEP_ALIVE_SECONDS``)."""
    return {**API_SERVER, "timeout_keep_alive": settings.api_keep_alive_seconds}


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


class ApiSupervisor(Multiprocess):
    """uvicorn's supervisor of the API processes, which notices a killed one at once.

    The supervisor pings each process every half second and waits for the answer up to
    ``timeout_worker_healthcheck`` (``WORKER_HEALTHCHECK_SECONDS``, 60 s). It kept its
    own copy of each pipe's child end, so a process killed while a ping was on its way
    (its answer waiting for the GIL on busy cores) left the pipe open and the supervisor
    waited out the whole minute, reaping and replacing no process meanwhile: a chaos run
    that SIGKILLed the second API process during that minute had no API for 60 s, and a
    SendGrid sandbox send queued in the listening socket then arrived three times. Once
    a process has started, its child end is closed here (the child has its own): the
    process's death ends the pipe, the ping fails at once and the process is replaced.
    """

    def init_processes(self) -> None:
        super().init_processes()
        self._close_child_ends()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._close_child_ends()

    def restart_all(self) -> None:
        super().restart_all()
        self._close_child_ends()

    def _close_child_ends(self) -> None:
        for process in self.processes:
            # Started before it was listed (spawn hands the child its end at start);
            # closing twice (uvicorn closes it on terminate and kill) does nothing.
            process.child_conn.close()


def processes_config(app: str, processes: int, **options: Any) -> TcpConfig:
    """The supervisor's configuration for ``processes`` copies of the app factory."""
    options.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_SECONDS)
    return TcpConfig(app, factory=True, workers=processes, **options)


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """A fresh directory in ``PROMETHEUS_MULTIPROC_DIR`` while the block runs, removed
    after: the API processes started meanwhile inherit it and write their request
    metrics there, so that each one's ``/metrics`` answers the sum over all of them
    (``api.middleware.metrics_exposition``). Fresh, because samples left by an earlier
    supervisor would be added in; a process that dies and is replaced leaves its counts,
    so the sums never go back."""
    path = Path(tempfile.mkdtemp(prefix="shop-api-metrics-"))
    os.environ[PROMETHEUS_MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(PROMETHEUS_MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def serve_processes(app: str, processes: int, **options: Any) -> None:
    """``uvicorn.run(app, workers=processes, factory=True, **options)``, with
    ``TcpConfig``'s socket and one ``/metrics`` for all processes: the API as
    ``shop api --workers N`` (and ``shop dev``) serves it. Blocks until the supervisor
    is stopped."""
    config = processes_config(app, processes, **options)
    with shared_metrics_dir():
        ApiSupervisor(config, sockets=[config.bind_socket()]).run()


@asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[str]:
    """The API on 127.0.0.1:``SHOP_API_PORT`` until the block exits; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=settings.shop_api_port,
        log_config=None,
        **api_server_options(settings),
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


def settle_heap(app: FastAPI) -> None:
    """Build what the app would build at its first request, then keep what a serving
    process has built by now (modules, the app, its routes and schemas: about 240,000
    objects, and the 24,000 below) out of the garbage collector's full passes.

    A full (generation 2) collection walks every tracked object while the event loop
    waits, and each API process serves 16 requests at once under the catalogue bench:
    in-process at 100,000 products, one full pass over a heap of 315,000 objects took
    253 ms during 1,500 first searches (the whole of that run's worst latency), and 61
    ms with this heap frozen (docs/benchmarks.md *Catalogue reads*). Objects frozen here are still
    freed by reference counting; only cyclic garbage among them would stay, and a
    collection first clears what the start-up left.

    FastAPI 0.16x includes routers lazily: each included route's dependencies
    (``Dependant``s: 1,262 for our app), parameters and response fields are built when
    the router is first walked, at the first request, about 24,000 tracked objects built
    after the freeze and walked by every full pass since. They are built once (kept on
    the app's included routers until a route is added), so walking the routes here
    (``iter_route_contexts``, as ``api.route_templates`` does) builds them in time to
    be frozen, and the first request no longer pays for it."""
    for _context in iter_route_contexts(app.router.routes):
        pass
    gc.collect()
    gc.freeze()


def api_worker_app() -> FastAPI:
    """One of ``shop api --workers N``'s processes: dies with its supervisor."""
    die_with_parent()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    settle_heap(app)
    return app
