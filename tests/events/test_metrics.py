"""The event counters counted in workers are in every API process's ``/metrics``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from redis.asyncio import Redis

from core.shared_metrics import SharedCounters
from services.events.metrics import EVENTS_DELIVERED, EVENTS_FAILED


def test_an_api_process_declares_the_event_counters(repo_root: Path) -> None:
    # In a fresh interpreter: this test module's own imports declare them here.
    code = (
        "import api.app\n"
        "from core.shared_metrics import SHARED_COUNTERS\n"
        "print(sorted(SHARED_COUNTERS))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout
    assert "'shop_events_delivered'" in out
    assert "'shop_events_failed'" in out


async def test_event_counters_are_reported_by_metrics(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    labels = {"subscriber": "crm", "type": "order.created"}
    await SharedCounters(redis).incr(EVENTS_DELIVERED, labels, by=3)
    await SharedCounters(redis).incr(EVENTS_FAILED, labels)
    text = (await client.get("/metrics")).text
    assert 'shop_events_delivered_total{subscriber="crm",type="order.created"} 3.0' in text
    assert 'shop_events_failed_total{subscriber="crm",type="order.created"} 1.0' in text
