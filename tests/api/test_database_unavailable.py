"""A database failure of the moment (a deadlock, a timeout, the server away) is the
database's outage, 503 ``database_unavailable`` with ``Retry-After``, never a 500: the
same request a moment later goes through. Through the API's real error handlers, against
the real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from api.deps import DbSession
from cli.stack.process import free_port
from core.db import create_engine, require_database_url
from core.settings import Settings
from tests.factories import ClientFactory

PROBLEM = "application/problem+json"


def _assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["code"] == "database_unavailable"
    assert body["status"] == 503
    assert body["requestId"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert "sqlstate" not in response.text.lower()


@pytest.fixture
async def probe(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (its handlers, middleware and Idempotency-Key layer) with routes that
    meet the database's failures for real."""
    app: FastAPI = create_app(settings)
    engine = create_engine(settings)
    # Each lock pair's keys are this test's own: other tests may take advisory locks.
    base = random.randrange(1, 2**30)
    barrier = asyncio.Barrier(2)
    calls = {"flaky": 0}

    @app.get("/api/_test/db/timeout")
    async def timeout() -> None:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text("SET LOCAL statement_timeout = 1"))
            await connection.execute(text("SELECT pg_sleep(1)"))

    @app.get("/api/_test/db/lock/{first}/{second}")
    async def lock(first: int, second: int) -> dict[str, bool]:
        # Two requests each hold one lock and then ask for the other's: a deadlock, which
        # PostgreSQL breaks after deadlock_timeout by aborting one of them (40P01).
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": base + first})
            await barrier.wait()
            await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": base + second})
        return {"locked": True}

    @app.post("/api/_test/db/flaky", status_code=201)
    async def flaky() -> dict[str, int]:
        # Times out the first time it runs, then goes through.
        calls["flaky"] += 1
        async with engine.connect() as connection, connection.begin():
            if calls["flaky"] == 1:
                await connection.execute(text("SET LOCAL statement_timeout = 1"))
            await connection.execute(text("SELECT pg_sleep(0.05)"))
        return {"ran": calls["flaky"]}

    @app.get("/api/_test/db/terminated")
    async def terminated() -> None:
        # The server ends this request's connection under it (an operator's
        # pg_terminate_backend, a failover): asyncpg's ConnectionDoesNotExistError.
        async with engine.connect() as connection, connection.begin():
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await connection.execute(text("SELECT 1"))

    @app.get("/api/_test/db/pool-exhausted")
    async def pool_exhausted() -> None:
        # Every pooled connection taken, none free within the pool's timeout.
        small = create_async_engine(
            require_database_url(settings), pool_size=1, max_overflow=0, pool_timeout=0.1
        )
        try:
            async with small.connect(), small.connect():
                pass
        finally:
            await small.dispose()

    @app.post("/api/_test/db/commit-refused")
    async def commit_refused(session: DbSession) -> dict[str, bool]:
        # The request's one transaction (DbSession) is refused at its commit, after the
        # endpoint returned, as PostgreSQL refuses a serializable transaction (40001):
        # a deferred trigger stands in for the concurrent transaction.
        for statement in (
            "CREATE TEMP TABLE refused (x int) ON COMMIT DROP",
            "CREATE OR REPLACE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'could not serialize access'"
            " USING ERRCODE = '40001'; END $$",
            "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON refused DEFERRABLE"
            " INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse()",
            "INSERT INTO refused VALUES (1)",
        ):
            await (await session.connection()).execute(text(statement))
        return {"committed": True}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http
    await engine.dispose()


async def test_a_statement_timeout_is_503_logged_as_a_warning_with_its_sqlstate(
    probe: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """statement_timeout cancels the query (57014): it was a 500 internal_error, logged
    as an unhandled error."""
    with caplog.at_level(logging.WARNING):
        response = await probe.get("/api/_test/db/timeout")
    _assert_database_unavailable(response)
    warnings = [r for r in caplog.records if r.name == "api.errors"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert getattr(warnings[0], "sqlstate", None) == "57014"
    assert "57014" in warnings[0].getMessage()


@pytest.mark.parametrize("failure", ["terminated", "pool-exhausted"])
async def test_a_connection_ended_under_a_request_or_none_free_is_503(
    probe: httpx.AsyncClient, failure: str
) -> None:
    _assert_database_unavailable(await probe.get(f"/api/_test/db/{failure}"))


async def test_a_serialization_failure_at_the_request_s_commit_is_503(
    probe: httpx.AsyncClient,
) -> None:
    """Refused at the commit the session dependency makes when the endpoint returned:
    still before the answer, still 503 (and the Idempotency-Key freed)."""
    headers = {"Idempotency-Key": f"refused-{random.randrange(2**40)}"}
    response = await probe.post("/api/_test/db/commit-refused", json={}, headers=headers)
    _assert_database_unavailable(response)
    assert "concurrent" in response.json()["detail"]
    again = await probe.post("/api/_test/db/commit-refused", json={}, headers=headers)
    _assert_database_unavailable(again)  # run again, not 409 in progress nor replayed


async def test_a_deadlock_between_two_requests_is_503_for_the_one_undone(
    probe: httpx.AsyncClient,
) -> None:
    answers = await asyncio.gather(
        probe.get("/api/_test/db/lock/1/2"), probe.get("/api/_test/db/lock/2/1")
    )
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200, 503], [response.text for response in answers]
    undone = next(response for response in answers if response.status_code == 503)
    _assert_database_unavailable(undone)
    assert "concurrent" in undone.json()["detail"]


async def test_a_503_frees_its_idempotency_key_so_the_retry_runs(
    probe: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": f"flaky-{random.randrange(2**40)}"}
    first = await probe.post("/api/_test/db/flaky", json={}, headers=headers)
    _assert_database_unavailable(first)
    retried = await probe.post("/api/_test/db/flaky", json={}, headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.json() == {"ran": 2}
    assert "idempotent-replayed" not in retried.headers
    replayed = await probe.post("/api/_test/db/flaky", json={}, headers=headers)
    assert replayed.json() == {"ran": 2}
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_postgresql_unreachable_is_503_and_ready_names_it(
    make_client: ClientFactory,
) -> None:
    """No server on the database's port: asyncpg's ConnectionRefusedError passed through
    SQLAlchemy as it was, a 500."""
    port = free_port()
    client = await make_client(database_url=f"postgresql+asyncpg://shop:shop@127.0.0.1:{port}/shop")
    products = await client.get("/api/products")
    _assert_database_unavailable(products)
    assert str(port) not in products.text
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["database"]
