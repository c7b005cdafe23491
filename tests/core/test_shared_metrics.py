"""Shared counters: any process increments, any API process reports the total."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from redis.asyncio import Redis

from core.shared_metrics import ONCE_PREFIX, ONCE_TTL_SECONDS, SharedCounters, declare

TEST_COUNTER = declare("shop_test_widgets", "Widgets counted by the test suite.", ("colour",))


async def test_counters_add_up_across_instances_and_show_in_metrics(
    redis: Redis, client: httpx.AsyncClient
) -> None:
    await SharedCounters(redis).incr(TEST_COUNTER, {"colour": "red"})
    await SharedCounters(redis).incr(TEST_COUNTER, {"colour": "red"}, by=2)
    await SharedCounters(redis).incr(TEST_COUNTER, {"colour": "blue"})

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'shop_test_widgets_total{colour="red"} 3.0' in response.text
    assert 'shop_test_widgets_total{colour="blue"} 1.0' in response.text
    assert "# HELP shop_test_widgets_total Widgets counted by the test suite." in response.text


async def test_undeclared_counters_and_wrong_labels_are_refused(redis: Redis) -> None:
    with pytest.raises(KeyError):
        await SharedCounters(redis).incr("shop_never_declared", {})
    with pytest.raises(ValueError, match="labels"):
        await SharedCounters(redis).incr(TEST_COUNTER, {"size": "big"})


async def test_incr_once_counts_a_key_once_and_checks_labels(redis: Redis) -> None:
    counters = SharedCounters(redis)
    key = f"evt_{uuid4().hex}"
    assert await counters.incr_once(TEST_COUNTER, {"colour": "green"}, once_key=key) is True
    assert await counters.incr_once(TEST_COUNTER, {"colour": "green"}, once_key=key) is False
    assert await counters.incr_once(TEST_COUNTER, {"colour": "green"}, once_key=f"{key}-2")
    assert (await counters.read())[(TEST_COUNTER, (("colour", "green"),))] == 2
    ttl = await redis.ttl(f"{ONCE_PREFIX}{TEST_COUNTER}:{key}")
    assert 0 < ttl <= ONCE_TTL_SECONDS
    with pytest.raises(ValueError, match="labels"):
        await counters.incr_once(TEST_COUNTER, {"size": "big"}, once_key=key)
    with pytest.raises(KeyError):
        await counters.incr_once("shop_never_declared", {}, once_key=key)
