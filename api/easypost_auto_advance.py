"""The EasyPost sandbox's auto-advance: a loop in each API process that, while the
switch is on, moves every tracker that has stood still for the interval one step.

Rows are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and re-stamped in the same
transaction, so with several API processes each tracker moves once a step. Webhooks go
out after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import timedelta

from api.routes.easypost_sandbox import (
    AUTO_ADVANCE_KEY,
    AutoAdvance,
    current_faults,
    sandbox_for,
    send_webhooks,
)
from api.state import AppState

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0
BATCH = 100


async def advance_once(state: AppState) -> int:
    """One pass: the trackers due now, moved and committed; how many moved."""
    raw = await state.redis.get(AUTO_ADVANCE_KEY)
    if not raw:
        return 0
    interval = timedelta(seconds=AutoAdvance.model_validate_json(raw).interval_seconds)
    async with state.sessions() as session:
        sandbox = sandbox_for(state, session)
        moved = await sandbox.advance_due(interval, limit=BATCH)
        await session.commit()
    if moved:
        send_webhooks(state, sandbox.webhooks, await current_faults(state.redis))
    return len(moved)


async def run_auto_advance(state: AppState) -> None:
    """While the switch is on: advance what is due. Ends when it is switched off."""
    while True:
        poll = IDLE_POLL_SECONDS
        try:
            raw = await state.redis.get(AUTO_ADVANCE_KEY)
            if not raw:
                return
            interval = AutoAdvance.model_validate_json(raw).interval_seconds
            poll = min(IDLE_POLL_SECONDS, max(interval / 5, 0.05))
            while await advance_once(state) >= BATCH:
                pass  # more are due: go on at once
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("EasyPost sandbox auto-advance failed; trying again")
        await asyncio.sleep(poll)


# The loop of each API process (by its state), started by the switch: a process the
# switch was not sent to leaves the work to those it was sent to.
_loops: dict[int, asyncio.Task[None]] = {}


def start_auto_advance(state: AppState) -> None:
    task = _loops.get(id(state))
    if task is None or task.done():
        task = asyncio.create_task(run_auto_advance(state))
        _loops[id(state)] = task
        task.add_done_callback(lambda _: _loops.pop(id(state), None))


async def stop_auto_advance(state: AppState) -> None:
    task = _loops.pop(id(state), None)
    if task is not None and not task.done():
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
