"""The servers a test run uses: embedded ones on free ports, or those the URL variables name.

Started once per session by ``tests/conftest.py``; each run gets a fresh database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from cli.stack.postgres import EmbeddedPostgres
from cli.stack.process import free_port
from cli.stack.redis import EmbeddedRedis
from core.settings import Settings, normalize_database_url
from temporal.deadlock import with_deadlock_timeout

# The suite (and the `shop dev` stacks it starts) register hundreds of accounts: a cheap
# argon2id cost for them. Production refuses this (Settings), and the hashing itself is
# tested at more than one cost (tests/services/test_passwords.py).
TEST_HASH_COST: dict[str, int] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 8192,
    "password_hash_parallelism": 1,
}

# What production requires that the suite's settings leave out (core.production): a JWT
# secret, the providers' keys and webhook secrets (their sandboxes are not mounted in
# production), and argon2id at no less than OWASP's floor (its defaults).
PRODUCTION_REQUIRES: dict[str, Any] = {
    "jwt_secret": "a-production-secret-of-enough-length-123",
    "stripe_secret_key": "sk_live_production_key",
    "stripe_webhook_secret": "whsec_production_endpoint_secret",
    "sendgrid_api_key": "SG.production_key",
    "easypost_api_key": "EZAK_production_key",
    "easypost_webhook_secret": "easypost_production_webhook_secret",
    "password_hash_time_cost": 3,
    "password_hash_memory_kib": 65536,
    "password_hash_parallelism": 4,
}


def production_settings(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` as in production (``SHOP_ENV=production``), with what it requires
    (``PRODUCTION_REQUIRES``) and ``overrides`` (``None`` unsets one)."""
    values = settings.model_dump() | {"shop_env": "production"} | PRODUCTION_REQUIRES
    return Settings.model_validate(values | overrides)


# Each test process runs the API, workers on every queue and three embedded servers, and
# three such processes share two cores: a full garbage collection in a workflow's thread
# there ran past the SDK's 2 s and was interrupted as a deadlock (temporal/deadlock.py).
TEST_DEADLOCK_TIMEOUT_SECONDS = 30


def suite_worker(client: Client, **options: Any) -> Worker:
    """A Temporal worker as the suite's stand-in tests run one: the SDK's, with the
    suite's deadlock limit (the live stacks get it from their settings)."""
    return with_deadlock_timeout(Worker(client, **options), TEST_DEADLOCK_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class StackServers:
    database_url: str  # the run's own fresh database
    redis_url: str
    redis_is_ours: bool  # only an embedded Redis may be flushed between tests


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def test_servers(workdir: Path) -> Iterator[StackServers]:
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        server_url = os.environ.get("DATABASE_URL")
        if server_url:
            server_url = normalize_database_url(server_url)
        else:
            pg = EmbeddedPostgres(
                workdir / "pg", free_port(), log_path=workdir / "postgres.log", durable=False
            )
            started.append(pg)
            pg.start()
            server_url = pg.url
        redis_url = os.environ.get("REDIS_URL")
        redis_is_ours = redis_url is None
        if redis_url is None:
            redis = EmbeddedRedis(
                workdir / "redis", free_port(), log_path=workdir / "redis.log", durable=False
            )
            started.append(redis)
            redis.start()
            redis_url = redis.url
        db_name = f"shop_test_{uuid4().hex[:12]}"
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{db_name}"'))
        try:
            yield StackServers(
                database_url=_with_database(server_url, db_name),
                redis_url=redis_url,
                redis_is_ours=redis_is_ours,
            )
        finally:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    finally:
        for server in reversed(started):
            server.stop()
