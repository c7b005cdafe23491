"""An Idempotency-Key's first request holds it by a lease it renews while it runs: the key
of an API process that died frees one lease later (it was held a fixed minute: a chaos run
counted 133 answers 409 ``idempotency_key_in_progress`` to retries of killed requests),
while a request longer than the lease keeps its key. Against the real Redis."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from api import idempotency
from api.idempotency import IdempotencyMiddleware, KeyLease
from core.settings import Settings
from tests.api.test_idempotency import _users_with
from tests.factories import PASSWORD, unique_email
from tests.processes import start_module


class SlowEndpoint:
    """The endpoint behind the middleware: its first run lasts until ``finish`` is set, then
    answers 201; a second run (the key was not held) answers at once."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finish = asyncio.Event()
        self.runs = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        self.runs += 1
        self.started.set()
        if self.runs == 1:
            await self.finish.wait()
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id":"thing_1"}'})


@asynccontextmanager
async def _behind_the_middleware(
    endpoint: SlowEndpoint, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    middleware = IdempotencyMiddleware(endpoint)
    app_state = SimpleNamespace(state=SimpleNamespace(shop=SimpleNamespace(redis=redis)))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await middleware({**scope, "app": app_state}, receive, send)

    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_key_of_a_killed_api_process_frees_within_one_lease(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    holders: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    """The first request runs in another process, which is SIGKILLed mid-request (nothing
    renews its lease nor frees its key). A client that waits as each 409's ``Retry-After``
    tells it gets through on its next try: it ran 201, once. Before, the key stayed taken
    for 60 s while every 409 said to come back in a second."""
    lease = 3
    email = unique_email("killed")
    body = {"email": email, "password": PASSWORD, "name": "Retried"}
    headers = {"Idempotency-Key": f"register-{email}", "X-Cart-Token": f"cart-{uuid4().hex}"}
    args = [
        settings.redis_url or "",
        str(lease),
        headers["Idempotency-Key"],
        headers["X-Cart-Token"],
        json.dumps(body),
    ]
    log = tmp_path / "holder.log"
    holder = await asyncio.to_thread(
        start_module, "tests.api.idempotency_holder", args, log, "running"
    )
    holders.append(holder)

    held = await client.post("/api/users", json=body, headers=headers)
    assert held.status_code == 409, held.text
    assert held.json()["code"] == "idempotency_key_in_progress"
    assert 1 <= int(held.headers["retry-after"]) <= lease

    os.kill(holder.pid, signal.SIGKILL)
    await asyncio.to_thread(holder.wait)
    answers = []
    for _ in range(3):
        retried = await client.post("/api/users", json=body, headers=headers)
        answers.append(retried.status_code)
        if retried.status_code != 409:
            break
        assert retried.json()["code"] == "idempotency_key_in_progress"
        wait = int(retried.headers["retry-after"])
        assert 1 <= wait <= lease
        await asyncio.sleep(wait)  # as told
    assert answers[-1] == 201, answers
    assert answers.count(409) <= 1, answers
    assert "idempotent-replayed" not in retried.headers
    assert await _users_with(engine, email) == 1


async def test_a_request_longer_than_its_lease_keeps_its_key(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewed while it runs: through two and a half leases, the same request again is
    409 ``idempotency_key_in_progress`` (told to wait at most a lease), never run a second
    time; once the first answers, it is replayed."""
    lease = 1.5
    monkeypatch.setattr(idempotency, "LEASE_SECONDS", lease)
    endpoint = SlowEndpoint()
    headers = {"Idempotency-Key": f"long-{uuid4().hex}"}
    async with _behind_the_middleware(endpoint, redis) as http:
        first = asyncio.create_task(http.post("/api/things", json={"n": 1}, headers=headers))
        try:
            await endpoint.started.wait()
            until = time.monotonic() + 2.5 * lease
            while time.monotonic() < until:
                again = await http.post("/api/things", json={"n": 1}, headers=headers)
                assert again.status_code == 409, again.text
                assert again.json()["code"] == "idempotency_key_in_progress"
                assert 1 <= int(again.headers["retry-after"]) <= math.ceil(lease)
                await asyncio.sleep(lease / 6)
            assert endpoint.runs == 1
        finally:
            endpoint.finish.set()
            answered = await first
        replayed = await http.post("/api/things", json={"n": 1}, headers=headers)
    assert answered.status_code == replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == answered.json()
    assert endpoint.runs == 1


async def test_a_lapsed_lease_never_renews_nor_settles_the_key_another_request_took(
    redis: Redis,
) -> None:
    """A request stalled past its lease (the key lapsed, another request took it) neither
    extends, overwrites nor frees the other's hold; with nobody holding the key, its answer
    is kept all the same (it ran: its retry is to replay it)."""
    key = f"idem:test:{uuid4().hex}"
    mine = await KeyLease.take(redis, key, "fingerprint", 10)
    assert isinstance(mine, KeyLease)
    await redis.delete(key)  # what a lapse leaves
    theirs = await KeyLease.take(redis, key, "fingerprint", 10)
    assert isinstance(theirs, KeyLease)
    assert theirs.running != mine.running

    assert not await mine.renew(600)
    assert await redis.get(key) == theirs.running
    assert 0 < await redis.pttl(key) <= 10_000
    done = json.dumps({"state": "done", "fingerprint": "fingerprint"})
    assert not await mine.settle(done)
    assert not await mine.settle(None)
    assert await redis.get(key) == theirs.running

    assert await theirs.renew(600)
    assert await redis.pttl(key) > 10_000
    assert await theirs.settle(None)
    assert await redis.get(key) is None
    assert await mine.settle(done)
    assert await redis.get(key) == done
