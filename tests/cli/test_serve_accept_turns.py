"""API processes that share a listening socket take turns to accept.

``shop api --workers N`` (so ``shop dev``) runs N processes on one socket, which race to
accept each connection; the process that had just accepted one won the next as well, so
32 keep-alive clients opened at once ended up 32/0 or 27/5 between two processes, and
the crowded one answered slower (``cli.serve.AcceptTurnsProtocol``). Each process now
sleeps for a moment after it accepts (as libuv's removed ``UV_TCP_SINGLE_ACCEPT`` did),
and a process alone does not. Checked on a real socket, by what the protocol does after
each accept, not by timing: how evenly the kernel then spreads the connections depends
on the machine's load (the README has the measured spreads).
"""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
from fastapi import FastAPI
from uvicorn.server import ServerState

from cli.serve import (
    ACCEPT_TURN_SECONDS,
    AcceptTurnsProtocol,
    BoundedHttpToolsProtocol,
    api_server_options,
)
from core.settings import Settings

CONNECTIONS = 3


async def _sleeps_while_accepting(monkeypatch: pytest.MonkeyPatch, workers: int) -> list[float]:
    """Serve ``AcceptTurnsProtocol`` as a process of ``workers`` does, open
    ``CONNECTIONS`` connections to it, and answer the sleeps it took meanwhile."""
    config = uvicorn.Config(FastAPI(), workers=workers, log_config=None)
    config.load()
    state = ServerState()
    slept: list[float] = []
    # The protocol's pause, not the process's ``time.sleep``: another thread's sleep (a
    # pool's, a client's) counted as the protocol's.
    monkeypatch.setattr("cli.serve.pause_after_accept", lambda: slept.append(ACCEPT_TURN_SECONDS))
    loop = asyncio.get_running_loop()
    accepted: list[asyncio.Transport] = []
    all_accepted = asyncio.Event()

    class Counted(AcceptTurnsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            accepted.append(transport)
            if len(accepted) == CONNECTIONS:
                all_accepted.set()

    def protocol() -> AcceptTurnsProtocol:
        return Counted(config=config, server_state=state, app_state={}, _loop=loop)

    server = await loop.create_server(protocol, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    writers = []
    try:
        for _ in range(CONNECTIONS):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
        await asyncio.wait_for(all_accepted.wait(), timeout=60)
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(accepted) == CONNECTIONS
    return slept


async def test_a_process_sharing_the_socket_gives_up_its_core_after_each_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (
        await _sleeps_while_accepting(monkeypatch, workers=2) == [ACCEPT_TURN_SECONDS] * CONNECTIONS
    )


async def test_a_process_alone_accepts_without_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await _sleeps_while_accepting(monkeypatch, workers=1) == []


def test_the_api_processes_are_served_by_the_turn_taking_protocol() -> None:
    # ``shop api`` (every process of ``--workers N``) and the tests' ``serve_api`` take
    # their server options here; the protocol keeps the request-head bound.
    http = api_server_options(Settings())["http"]
    assert http is AcceptTurnsProtocol
    assert issubclass(http, BoundedHttpToolsProtocol)
