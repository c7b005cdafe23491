"""Counters every process adds to, kept in Redis, reported by the API's ``/metrics``.

Workers have no metrics endpoint of their own, and ``shop dev`` runs several API
processes: a counter incremented in a worker (an event delivered, a payment failed)
would be invisible or split. These live in one Redis hash, so any API process reports
the whole system's totals. Declare each counter in ``SHARED_COUNTERS`` with its help.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

KEY = "shop:metrics:counters"
# ``incr_once`` marks what it counted under this prefix, for ``ONCE_TTL_SECONDS``.
ONCE_PREFIX = "shop:metrics:counted:"
ONCE_TTL_SECONDS = 30 * 24 * 3600
# The mark and the increment in one atomic step: a crash can neither count without
# marking (a double count on retry) nor mark without counting (a lost count).
_INCR_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# name (without the ``_total`` suffix Prometheus adds) -> (help, label names)
SHARED_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {}


def declare(name: str, help: str, labels: tuple[str, ...]) -> str:
    """Declare a shared counter; returns its name for ``incr``."""
    existing = SHARED_COUNTERS.get(name)
    if existing is not None and existing != (help, labels):
        raise ValueError(f"shared counter {name!r} declared twice, differently")
    SHARED_COUNTERS[name] = (help, labels)
    return name


class SharedCounters:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def incr(self, name: str, labels: Mapping[str, str], by: int = 1) -> None:
        self._check(name, labels)
        await self.redis.hincrby(KEY, _field(name, labels), by)

    async def incr_once(
        self,
        name: str,
        labels: Mapping[str, str],
        once_key: str,
        by: int = 1,
        ttl_seconds: int = ONCE_TTL_SECONDS,
    ) -> bool:
        """``incr``, but at most once per ``once_key`` (e.g. an event id and subscriber)
        within ``ttl_seconds``: a retried or redelivered caller does not count twice,
        even when its own transaction rolled back after the count. True if counted."""
        self._check(name, labels)
        counted = await self.redis.eval(
            _INCR_ONCE,
            2,
            f"{ONCE_PREFIX}{name}:{once_key}",
            KEY,
            _field(name, labels),
            str(by),
            str(ttl_seconds),
        )
        return int(counted) == 1

    @staticmethod
    def _check(name: str, labels: Mapping[str, str]) -> None:
        declared = SHARED_COUNTERS.get(name)
        if declared is None:
            raise KeyError(f"shared counter {name!r} is not declared")
        if set(labels) != set(declared[1]):
            raise ValueError(f"{name} takes labels {declared[1]}, got {sorted(labels)}")

    async def read(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
        raw = await self.redis.hgetall(KEY)
        values: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        for field, value in raw.items():
            text = field.decode() if isinstance(field, bytes) else str(field)
            name, _, labels = text.partition("|")
            values[(name, tuple(sorted(json.loads(labels).items())))] = int(value)
        return values

    async def exposition(self) -> bytes:
        """The counters in the Prometheus text format (declared ones appear even at 0)."""
        registry = CollectorRegistry()
        registry.register(_Snapshot(await self.read()))
        return generate_latest(registry)


def _field(name: str, labels: Mapping[str, str]) -> str:
    return f"{name}|{json.dumps(dict(sorted(labels.items())), separators=(',', ':'))}"


class _Snapshot(Collector):
    def __init__(self, values: dict[tuple[str, tuple[tuple[str, str], ...]], int]) -> None:
        self.values = values

    def collect(self) -> list[CounterMetricFamily]:
        families = []
        for name, (help, label_names) in sorted(SHARED_COUNTERS.items()):
            family = CounterMetricFamily(name, help, labels=list(label_names))
            for (counted, labels), value in sorted(self.values.items()):
                if counted == name:
                    by_name = dict(labels)
                    family.add_metric([by_name.get(label, "") for label in label_names], value)
            families.append(family)
        return families
