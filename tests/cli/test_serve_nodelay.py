"""The multi-process API sets ``TCP_NODELAY`` on the connections it accepts.

uvicorn 0.54.0's ``--workers`` socket says ``proto`` 0, so asyncio left Nagle's algorithm
on for every accepted connection and each keep-alive response waited for the client's
delayed ACK (``cli.serve.TcpConfig`` explains). Checked twice, without timing anything:
the socket ``TcpConfig`` binds, served by an asyncio server here; and ``shop api
--workers 2`` itself, whose worker's accepted connection is fetched from that process
(``pidfd_getfd``) and asked for its ``TCP_NODELAY``.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import uvicorn

from cli.serve import TcpConfig
from cli.stack.process import free_port
from core.settings import Settings
from tests.stack import StackServers

ROOT = Path(__file__).resolve().parents[2]
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


def nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def accepted_nodelay(listening: socket.socket) -> int:
    """Serve ``listening`` with asyncio (as a uvicorn worker does) and answer the
    ``TCP_NODELAY`` of the connection it accepts."""
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(nodelay(transport.get_extra_info("socket")))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
    async with server:
        _reader, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        found = await accepted
        writer.close()
    return found


async def test_the_socket_tcp_config_binds_gives_accepted_connections_tcp_nodelay() -> None:
    ours = TcpConfig("cli.serve:api_worker_app", host="127.0.0.1", port=free_port()).bind_socket()
    assert (ours.family, ours.type, ours.proto) == (
        socket.AF_INET,
        socket.SOCK_STREAM,
        socket.IPPROTO_TCP,
    )
    assert ours.get_inheritable()  # the workers are handed it
    assert await accepted_nodelay(ours) == 1
    # The cause, as uvicorn 0.54.0 binds it (when this fails, uvicorn has fixed it and
    # TcpConfig can go).
    theirs = uvicorn.Config("cli.serve:api_worker_app", host="127.0.0.1", port=free_port())
    plain = theirs.bind_socket()
    assert plain.proto == 0
    assert await accepted_nodelay(plain) == 0


def fetch_fd(pid: int, fd: int) -> socket.socket | None:
    """A copy of process ``pid``'s descriptor ``fd`` (Linux ``pidfd_getfd``), as a socket."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copied = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    finally:
        os.close(pidfd)
    if copied < 0:
        return None
    try:
        return socket.socket(fileno=copied)
    except OSError:  # not a socket
        os.close(copied)
        return None


def server_side(supervisor: int, client: socket.socket) -> Iterator[socket.socket]:
    """The sockets of the supervisor's workers that are ``client``'s other end."""
    for worker in psutil.Process(supervisor).children(recursive=True):
        for entry in Path(f"/proc/{worker.pid}/fd").iterdir():
            if not os.readlink(entry).startswith("socket:"):
                continue
            sock = fetch_fd(worker.pid, int(entry.name))
            if sock is None:
                continue
            try:
                if sock.family == socket.AF_INET and sock.getpeername() == client.getsockname():
                    yield sock
                    continue
            except OSError:  # a listening or unconnected socket
                pass
            sock.close()


def keep_alive_get(client: socket.socket, path: str) -> bytes:
    """One request on the open connection; answers the whole response (head and body)."""
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed: {answer!r}"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    [length] = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    while len(body) < length:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed: {answer!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def api_in_two_processes(
    servers: StackServers, settings: Settings, tmp_path: Path
) -> Iterator[tuple[int, int, Path]]:
    """``shop api --workers 2`` on a free port: (its supervisor's pid, the port, its log)."""
    port = free_port()
    log = tmp_path / "api.log"
    env = os.environ | {
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "SHOP_ENV": "test",
        "LOG_LEVEL": "WARNING",
        "JWT_SECRET": "test-secret-that-is-long-enough-for-hs256-signing",
    }
    with log.open("wb") as output:
        api = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield api.pid, port, log
    finally:
        api.terminate()
        try:
            api.wait(timeout=20)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()


def test_shop_api_with_two_workers_answers_keep_alive_connections_with_tcp_nodelay(
    api_in_two_processes: tuple[int, int, Path],
) -> None:
    supervisor, port, log = api_in_two_processes
    client: socket.socket | None = None
    for _ in range(600):  # the workers start (a minute at most)
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=30)
            break
        except ConnectionRefusedError:
            assert psutil.Process(supervisor).status() != psutil.STATUS_ZOMBIE, log.read_text()
            time.sleep(0.1)
    assert client is not None, "shop api never listened"
    with client:
        for _ in range(3):  # one connection, several requests: keep-alive
            assert keep_alive_get(client, "/health").startswith(b"HTTP/1.1 200")
        [accepted] = list(server_side(supervisor, client))
        with accepted:
            assert nodelay(accepted) == 1
