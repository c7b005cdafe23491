"""The Redis client: opening a connection is retried, a command is sent once.

Between the client and the test's Redis sits a small TCP relay that can drop a
connection at a chosen moment, as a loaded machine or a network blip would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.redis import CONNECT_RETRIES, create_redis
from core.settings import Settings

# Decides, for the n-th connection (from 1) and the bytes the client just sent, whether
# the relay drops the connection: "before" (the bytes never reach Redis) or "after"
# (Redis runs them, its answer is lost), or None to relay them.
Dropper = Callable[[int, bytes], str | None]


@asynccontextmanager
async def _relay(redis_url: str, drop: Dropper) -> AsyncIterator[str]:
    upstream = urlsplit(redis_url)
    connections = 0
    tasks: set[asyncio.Task[None]] = set()

    async def serve(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        number = connections
        server_reader, server_writer = await asyncio.open_connection(
            upstream.hostname, upstream.port
        )

        async def answers() -> None:
            while data := await server_reader.read(65536):
                client_writer.write(data)
                await client_writer.drain()

        relaying = asyncio.create_task(answers())
        tasks.add(relaying)
        try:
            while data := await client_reader.read(65536):
                verdict = drop(number, data)
                if verdict == "before":
                    break
                if verdict == "after":
                    relaying.cancel()
                    with suppress(asyncio.CancelledError):
                        await relaying
                    server_writer.write(data)
                    await server_writer.drain()
                    await server_reader.read(65536)  # Redis ran it; the answer goes nowhere
                    break
                server_writer.write(data)
                await server_writer.drain()
        finally:
            relaying.cancel()
            for writer in (client_writer, server_writer):
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield urlunsplit(upstream._replace(netloc=f"127.0.0.1:{port}"))
    finally:
        server.close()
        for task in tasks:
            task.cancel()


async def test_a_connection_dropped_while_it_opens_is_opened_again(
    settings: Settings, redis: Redis
) -> None:
    """The first connections die in their handshake (a connect that timed out on a
    loaded machine is the same failure to redis-py): the command still gets its answer.
    Before, ``Redis.from_url`` tried a connection once and the request answered 503."""
    await redis.set("relay:greeting", "hello")

    def first_ones_dropped(number: int, data: bytes) -> str | None:
        return "before" if number <= CONNECT_RETRIES else None

    async with _relay(settings.redis_url or "", first_ones_dropped) as url:
        client = create_redis(settings.model_copy(update={"redis_url": url}))
        try:
            assert await client.get("relay:greeting") == "hello"
        finally:
            await client.aclose()


async def test_a_connection_that_never_opens_fails_after_its_retries(
    settings: Settings,
) -> None:
    tries: list[int] = []

    def always_dropped(number: int, data: bytes) -> str | None:
        tries.append(number)
        return "before"

    async with _relay(settings.redis_url or "", always_dropped) as url:
        client = create_redis(settings.model_copy(update={"redis_url": url}))
        try:
            with pytest.raises(RedisConnectionError):
                await client.get("relay:greeting")
        finally:
            await client.aclose()
    assert len(set(tries)) == 1 + CONNECT_RETRIES


async def test_a_command_whose_answer_was_lost_is_not_sent_again(
    settings: Settings, redis: Redis
) -> None:
    """An INCR ran but its answer never came back: the caller sees the failure, and the
    counter went up once. redis-py's own retry (``Redis()``'s default) would send it again
    and count a shopper's request twice against a rate limit."""
    await redis.delete("relay:counter")

    def answer_of_the_incr_lost(number: int, data: bytes) -> str | None:
        return "after" if b"INCR" in data.upper() else None

    async with _relay(settings.redis_url or "", answer_of_the_incr_lost) as url:
        client = create_redis(settings.model_copy(update={"redis_url": url}))
        try:
            with pytest.raises(RedisConnectionError):
                await client.incr("relay:counter")
        finally:
            await client.aclose()
    assert await redis.get("relay:counter") == "1"
