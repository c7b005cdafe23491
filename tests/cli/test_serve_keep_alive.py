"""The API keeps an idle keep-alive connection open for ``API_KEEP_ALIVE_SECONDS``.

uvicorn's own default (5 s) equalled httpx's pool expiry (5 s), and is shorter than a
load balancer's idle timeout (AWS ALB 60 s): the server closed idle connections first,
and a request the client sent on one as it closed was lost (httpx ``ReadError`` on a
POST, a 502 at a balancer). Checked on a real socket: the server closes after the
configured idle time, not uvicorn's.
"""

from __future__ import annotations

import asyncio

from cli.serve import api_server_options, serve_api
from cli.stack.process import free_port
from core.settings import Settings

REQUEST = b"GET /health HTTP/1.1\r\nHost: shop\r\n\r\n"


async def _answered(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)


async def test_an_idle_connection_is_closed_after_the_configured_time(
    settings: Settings,
) -> None:
    short = settings.model_copy(update={"shop_api_port": free_port(), "api_keep_alive_seconds": 1})
    async with serve_api(short):
        reader, writer = await asyncio.open_connection("127.0.0.1", short.shop_api_port)
        try:
            writer.write(REQUEST)
            await _answered(reader)
            # Kept open between requests...
            writer.write(REQUEST)
            await _answered(reader)
            # ...and closed by the server once idle for a second (uvicorn's default
            # would keep it for 5): the read ends with the server's FIN.
            assert await asyncio.wait_for(reader.read(), timeout=4) == b""
        finally:
            writer.close()


def test_the_api_outlasts_load_balancers_and_client_pools_idle_timeouts() -> None:
    options = api_server_options(Settings())
    # AWS ALB's default idle timeout is 60 s, httpx's pool expiry 5 s.
    assert options["timeout_keep_alive"] > 60
