"""A worker process on the events queue with a test subscriber, for the crash test.

    python -m tests.events.relay_worker RUN SUBSCRIBER[,SUBSCRIBER…]

Configured from the environment like ``shop worker``. Its handlers write an effect row
(``relay_support.EFFECTS``) a little slowly, so that a SIGKILL lands mid-delivery.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from core.settings import Settings
from services.events.subscribers import DomainEvent
from temporal.client import connect
from temporal.queues import TaskQueue
from tests.events.relay_support import Recorder
from workers.main import running_workers, worker_deps

HANDLER_SECONDS = 0.5


async def _slowly(event: DomainEvent, attempt: int) -> None:
    await asyncio.sleep(HANDLER_SECONDS)


async def serve(run: str, names: str) -> None:
    settings = Settings()
    client = await connect(settings)
    subscribers = [Recorder(name, run, behaviour=_slowly).subscriber for name in names.split(",")]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with (
        worker_deps(settings, client) as deps,
        running_workers(client, deps, [TaskQueue.EVENTS], subscribers=subscribers),
    ):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
