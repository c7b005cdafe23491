"""``shop bench events``: how fast the relay delivers, and how late, on the running stack.

It writes ``system.relay_probe`` events to the stack's outbox, as any publisher does
(``core.outbox.publish`` in a committed transaction), and the stack's own workers deliver
them through the whole path: NOTIFY, fan-out, a ``EventDeliveryWorkflow`` per event, the
``relay_probe`` handler, whose only effect is to note when it ran (in Redis). So the
figures are the relay's and Temporal's, with no provider in the way.

Two parts:
- **idle**: events one at a time, each after the previous one was handled: the latency
  from commit to the handler's start on an idle stack (the issue's p95 < 1 s);
- **load**: ``--events`` events written at ``--rate`` per second (in batches every 20 ms,
  over ``--aggregates`` aggregates), then waited for: delivered events per second end to
  end (first commit to last handler start) and the lag percentiles.

Lag is the handler's start (its ``time.time()``) minus the moment the publishing
transaction committed (ours); both clocks are this host's when the stack runs here.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from core.db import SessionFactory, create_engine, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from core.redis import create_redis
from core.settings import Settings
from services.events.probe import probe_key

BATCH_SECONDS = 0.02


class BenchError(Exception):
    """The stack did not deliver what the benchmark needs."""


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[p - 1]


@dataclass(frozen=True)
class EventsResult:
    label: str
    events: int
    offered_rate: float | None
    seconds: float
    lags: list[float]

    def lines(self) -> list[str]:
        rate = f", offered {self.offered_rate:.0f}/s" if self.offered_rate else ""
        lags = self.lags
        return [
            f"{self.label}: {self.events} events{rate}: delivered "
            f"{len(lags) / self.seconds:,.1f} events/s end to end over {self.seconds:.2f} s",
            f"  lag commit -> handler: p50 {percentile(lags, 50) * 1000:,.0f} ms   "
            f"p95 {percentile(lags, 95) * 1000:,.0f} ms   "
            f"p99 {percentile(lags, 99) * 1000:,.0f} ms   max {max(lags) * 1000:,.0f} ms",
        ]


async def _publish(sessions: SessionFactory, aggregates: list[str]) -> tuple[list[str], float]:
    async with transaction(sessions) as session:
        ids = [
            (await publish(session, EventType.RELAY_PROBE, aggregate, {"bench": True})).id
            for aggregate in aggregates
        ]
    return ids, time.time()


async def _handled(redis: Redis, ids: list[str]) -> list[float | None]:
    values: list[float | None] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        raw = await redis.mget([probe_key(i) for i in chunk])
        values += [float(v) if v is not None else None for v in raw]
    return values


async def _wait(redis: Redis, committed: dict[str, float], within: float) -> list[float]:
    ids = list(committed)
    deadline = time.monotonic() + within
    while True:
        handled = await _handled(redis, ids)
        if all(h is not None for h in handled):
            return [h - committed[i] for i, h in zip(ids, handled, strict=True) if h is not None]
        if time.monotonic() > deadline:
            missing = sum(h is None for h in handled)
            raise BenchError(
                f"{missing} of {len(ids)} events not handled within {within:.0f} s: are the "
                "stack's workers running (shop dev), and is the relay_probe subscriber there?"
            )
        await asyncio.sleep(0.05)


async def idle(sessions: SessionFactory, redis: Redis, count: int, run: str) -> EventsResult:
    lags: list[float] = []
    started = time.perf_counter()
    for n in range(count):
        ids, at = await _publish(sessions, [f"bench-{run}-idle-{n}"])
        lags += await _wait(redis, {ids[0]: at}, within=30)
        await asyncio.sleep(0.1)  # idle again before the next one
    return EventsResult("idle", count, None, time.perf_counter() - started, lags)


async def load(
    sessions: SessionFactory,
    redis: Redis,
    count: int,
    rate: float,
    aggregates: int,
    run: str,
    say: Callable[[str], None],
) -> EventsResult:
    committed: dict[str, float] = {}
    per_batch = max(1, round(rate * BATCH_SECONDS))
    first = time.time()
    next_batch = time.perf_counter()
    written = 0
    while written < count:
        size = min(per_batch, count - written)
        names = [f"bench-{run}-{(written + k) % aggregates}" for k in range(size)]
        ids, at = await _publish(sessions, names)
        committed.update(dict.fromkeys(ids, at))
        written += size
        next_batch += size / rate
        delay = next_batch - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    say(f"wrote {count} events in {time.time() - first:.1f} s; waiting for their delivery…")
    lags = await _wait(redis, committed, within=max(120.0, count / 10))
    handled_last = max(committed[i] + lag for i, lag in zip(committed, lags, strict=True))
    return EventsResult("load", count, rate, handled_last - first, lags)


async def run(
    settings: Settings,
    *,
    events: int,
    rate: float,
    aggregates: int,
    idle_events: int,
    progress: Callable[[str], None] | None = None,
) -> list[EventsResult]:
    say = progress or (lambda _message: None)
    engine = create_engine(settings)
    redis = create_redis(settings)
    run_id = f"{int(time.time())}"
    try:
        sessions = create_session_factory(engine)
        say(f"idle: {idle_events} events one at a time…")
        results = [await idle(sessions, redis, idle_events, run_id)]
        say(f"load: {events} events at {rate:.0f}/s over {aggregates} aggregates…")
        results.append(await load(sessions, redis, events, rate, aggregates, run_id, say))
        return results
    finally:
        await redis.aclose()
        await engine.dispose()
