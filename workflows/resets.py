"""Whether an operator has reset the run (``temporal workflow reset``, the UI's Reset),
for a workflow that then reads its work again from the database: ``FulfillmentWorkflow``
(since ``fulfillment-reset-reads-the-database``) and ``ReturnWorkflow`` (since
``return-reset-reads-the-return``).

A reset run keeps its history up to the reset point and does again what came after it;
Temporal gives it a new randomness seed there, which is how it knows. A run reset to its
first workflow task learns it too late for this (the seed changes before ``run`` can
listen): the workflows read their work at their start as well.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow


class ResetWatch:
    def __init__(self) -> None:
        self._reset = asyncio.Event()
        # Reset since the run last took it (``take``): a condition the run waits on.
        self.seen = False
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Listen, from the run's first workflow task."""
        workflow.register_random_seed_callback(lambda _seed: self._reset.set())
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """The seed's change alone wakes nothing (the SDK looks at what the run waits
        for when a task of it has run); this task is woken by it, and then the run is."""
        while True:
            await self._reset.wait()
            self._reset.clear()
            self.seen = True

    def take(self) -> bool:
        """Whether the run was reset since it last asked (and forget it)."""
        seen, self.seen = self.seen, False
        return seen
