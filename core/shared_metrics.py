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
        declared = SHARED_COUNTERS.get(name)
        if declared is None:
            raise KeyError(f"shared counter {name!r} is not declared")
        if set(labels) != set(declared[1]):
            raise ValueError(f"{name} takes labels {declared[1]}, got {sorted(labels)}")
        await self.redis.hincrby(KEY, _field(name, labels), by)

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
