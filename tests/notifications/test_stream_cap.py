"""At most ``STREAM_MAX_PER_USER`` live streams per user, counted in Redis across API
processes: one more is 429 ``too_many_streams``; a slot comes back when its stream ends,
or one TTL after a dead process last renewed it. One account could open thousands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.stack.process import free_port
from core.redis import create_redis
from core.settings import Settings
from services.stream_slots import StreamSlots, TooManyStreams
from tests.api.test_order_long_poll import placed_order
from tests.factories import signed_up
from tests.live import live_api
from tests.notifications.helpers import sse_events

CAP = 2


@pytest.fixture(scope="module")
async def apis(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Two API processes' worth of servers (each its own state), one Redis."""

    def capped() -> Settings:
        return Settings.model_validate(
            settings.model_dump() | {"shop_api_port": free_port(), "stream_max_per_user": CAP}
        )

    async with live_api(capped()) as first, live_api(capped()) as second:
        yield first, second


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    yield client
    await client.aclose()


async def _open(stack: AsyncExitStack, url: str, headers: dict[str, str]) -> httpx.Response:
    """A stream opened and left open (until ``stack`` closes), its first event read."""
    client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
    response = await stack.enter_async_context(
        client.stream("GET", "/api/events/stream", headers=headers)
    )
    if response.status_code == 200:
        events = sse_events(response)
        # Kept to the end: a reader dropped (collected) would close the response.
        stack.push_async_callback(events.aclose)
        assert (await anext(events)).comment == "connected"
    else:
        await response.aread()
    return response


async def _until_counted(slots: StreamSlots, user_id: str, count: int) -> None:
    # Bounded only to fail rather than hang: a loaded machine notices a disconnect late.
    async with asyncio.timeout(30):
        while await slots.open_count(user_id) != count:  # noqa: ASYNC110 (Redis, polled)
            await asyncio.sleep(0.05)


async def test_the_cap_holds_across_api_processes_and_a_closed_stream_frees_its_slot(
    apis: tuple[str, str], engine: AsyncEngine, redis: Redis
) -> None:
    first, second = apis
    slots = StreamSlots(redis, per_user=CAP, ttl_seconds=60)
    async with httpx.AsyncClient(base_url=first, timeout=30) as http:
        user, headers = await signed_up(http)
        order_id = await placed_order(engine, user)
    async with AsyncExitStack() as kept:
        assert (await _open(kept, first, headers)).status_code == 200
        async with AsyncExitStack() as closed:
            assert (await _open(closed, second, headers)).status_code == 200
            assert await slots.open_count(user["id"]) == CAP
            for url in (first, second):
                async with AsyncExitStack() as refused_stack:
                    refused = await _open(refused_stack, url, headers)
                assert refused.status_code == 429, refused.text
                assert refused.headers["content-type"].startswith("application/problem+json")
                assert (refused.json()["code"], refused.json()["limit"]) == (
                    "too_many_streams",
                    CAP,
                )
            # An order's stream counts against the same cap.
            async with httpx.AsyncClient(base_url=second, timeout=30) as http:
                order_stream = await http.get(f"/api/orders/{order_id}/events", headers=headers)
            assert (order_stream.status_code, order_stream.json()["code"]) == (
                429,
                "too_many_streams",
            )
            # Another user is not held back by this one's streams.
            async with httpx.AsyncClient(base_url=first, timeout=30) as http:
                _, other = await signed_up(http)
            async with AsyncExitStack() as others:
                assert (await _open(others, first, other)).status_code == 200
        # The client left: its slot comes back, and the user may open one again.
        await _until_counted(slots, user["id"], 1)
        async with AsyncExitStack() as again:
            assert (await _open(again, first, headers)).status_code == 200
    await _until_counted(slots, user["id"], 0)


async def test_a_dead_processs_slot_stops_counting_after_its_ttl(redis: Redis) -> None:
    """A slot nobody gives back (its process died) frees itself; a served one is renewed
    for as long as its stream runs."""
    ttl = 0.6
    slots = StreamSlots(redis, per_user=1, ttl_seconds=ttl)
    user_id = f"user_dead_{free_port()}"
    await slots.take(user_id)  # never served, never given back
    with pytest.raises(TooManyStreams):
        await slots.take(user_id)
    await asyncio.sleep(ttl * 2)
    served = await slots.take(user_id)
    ended = asyncio.Event()

    async def events() -> AsyncGenerator[int, None]:
        yield 1
        await ended.wait()

    stream = slots.serve(served, events())
    assert await anext(stream) == 1
    serving = asyncio.create_task(anext(stream, None))
    await asyncio.sleep(ttl * 3)  # renewed meanwhile: still counted
    assert await slots.open_count(user_id) == 1
    with pytest.raises(TooManyStreams):
        await slots.take(user_id)
    ended.set()
    assert await serving is None
    await stream.aclose()
    assert await slots.open_count(user_id) == 0
