"""A worker process: one Temporal ``Worker`` per task queue it serves.

Start as many processes as you like, on any hosts; Temporal spreads tasks over them.
SIGTERM/SIGINT shut the workers down gracefully (running activities get to finish).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from core.db import create_engine, create_session_factory
from core.production import check_production
from core.redis import create_redis
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from integrations.email.factory import build_sender
from services.catalog.indexing import SearchIndexing
from services.events.relay import RelayService
from services.events.subscribers import Subscriber
from services.webhooks.sending import webhook_client
from temporal.attempts import StepAttempts
from temporal.client import connect, worker_runtime
from temporal.clients.connection import TemporalConnection
from temporal.clients.events import EventDeliveryWorkflows
from temporal.deadlock import with_deadlock_timeout
from temporal.queues import TaskQueue
from temporal.sandbox import workflow_runner
from temporal.schedules import ensure_schedules
from workers.registry import WorkerDeps, components_for, default_subscribers
from workers.relay import OutboxRelay

log = logging.getLogger(__name__)


@asynccontextmanager
async def worker_deps(settings: Settings, client: Client) -> AsyncIterator[WorkerDeps]:
    """The engine, Redis and providers activities are built with, closed on exit."""
    tracing = tracing_for(settings, ProcessRole.WORKER)
    engine = create_engine(settings, tracing=tracing)
    redis = create_redis(settings, tracing=tracing)
    webhook_http = webhook_client(settings, tracing)
    try:
        yield WorkerDeps(
            settings=settings,
            client=client,
            engine=engine,
            sessions=create_session_factory(engine),
            redis=redis,
            email_sender=build_sender(settings, tracing),
            webhook_http=webhook_http,
            search_index=SearchIndexing.from_settings(settings),
        )
    finally:
        await webhook_http.aclose()
        await redis.aclose()
        await engine.dispose()


@asynccontextmanager
async def running_workers(
    client: Client,
    deps: WorkerDeps,
    queues: Sequence[TaskQueue],
    *,
    subscribers: Sequence[Subscriber] | None = None,
    started: float | None = None,
) -> AsyncIterator[None]:
    """Poll every queue in ``queues`` until the block exits, then drain gracefully.

    Serving the events queue also runs the outbox relay, delivering to ``subscribers``
    (default: every subscriber in the code; tests pass their own), and owing them the
    events dispatched since ``started`` (the process's ``time.monotonic()``; default:
    when the relay is built).
    """
    if subscribers is None:
        subscribers = default_subscribers(deps)
    async with AsyncExitStack() as running:
        for queue in queues:
            parts = components_for(queue, deps, subscribers)
            worker = Worker(
                client,
                task_queue=str(queue),
                workflows=parts.workflows,
                activities=parts.activities,
                # Retry budgets count an activity's own failures, not lost workers.
                interceptors=[StepAttempts()],
                graceful_shutdown_timeout=timedelta(seconds=5),
                workflow_runner=workflow_runner(),
            )
            await running.enter_async_context(
                with_deadlock_timeout(worker, deps.settings.workflow_deadlock_timeout_seconds)
            )
        if TaskQueue.EVENTS in queues:
            # Entered last, so it stops first: no new starts while the workers drain.
            await running.enter_async_context(relaying(client, deps, subscribers, started))
            if deps.search_index is not None:
                # The events worker writes the search index: built now if missing or of
                # an older schema, in the background (searches use PostgreSQL meanwhile).
                build = asyncio.create_task(
                    deps.search_index.ensure_built(deps.sessions), name="search-index-build"
                )
                running.callback(build.cancel)
        yield


@asynccontextmanager
async def relaying(
    client: Client,
    deps: WorkerDeps,
    subscribers: Sequence[Subscriber],
    started: float | None = None,
) -> AsyncIterator[OutboxRelay]:
    """The outbox relay (``workers.relay``) running beside the workers."""
    tracing = tracing_for(deps.settings, ProcessRole.WORKER)
    relay = OutboxRelay(
        deps.settings,
        RelayService(
            deps.sessions,
            subscribers,
            grace=timedelta(seconds=deps.settings.event_subscriber_grace_seconds),
            # Twice a poll: a live relay's pairs are never older than about one poll
            # (a pass runs at least once a poll), well inside the grace's three.
            beat_every=timedelta(seconds=deps.settings.event_relay_poll_seconds / 2),
            forget_after=timedelta(seconds=deps.settings.event_subscription_retention_seconds),
            trace_links=tracing is not None and tracing.exporting,
            started=started,
        ),
        EventDeliveryWorkflows(TemporalConnection.of(client), deps.settings),
    )
    task = asyncio.create_task(relay.run(), name="outbox-relay")
    try:
        yield relay
    finally:
        relay.stop()
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            log.warning("outbox relay did not stop in time; cancelled")


async def run_worker(settings: Settings, queues: Sequence[TaskQueue]) -> None:
    # Before connecting anything: every setting production lacks, named at once.
    check_production(settings, ProcessRole.WORKER, queues)
    # The deploy's moment for the subscribers of this code: its relay owes them what was
    # dispatched from here on, while it connects and starts its workers too.
    started = time.monotonic()
    client = await connect(settings, role=ProcessRole.WORKER, runtime=worker_runtime(settings))
    try:
        await ensure_schedules(client)
    except Exception as exc:  # e.g. a namespace where we may not create schedules
        log.warning("could not ensure schedules: %s", exc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with (
        worker_deps(settings, client) as deps,
        running_workers(client, deps, queues, started=started),
    ):
        log.info("worker ready", extra={"queues": ",".join(map(str, queues))})
        await stop.wait()
        log.info("worker stopping")
