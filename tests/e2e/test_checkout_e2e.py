"""Checkout against the real ``shop dev`` stack, as clients and operators meet it.

A worker killed with SIGKILL in the middle of orders loses nothing: the supervisor
starts a new one, which finishes them, and every order is charged exactly once. Thirty
shoppers racing for ten units produce ten orders and twenty ``out_of_stock``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import DevRun, running_stack, shoppers_with, worker_processes
from tests.orders.helpers import intents_for, place, product, stock, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    with running_stack(tmp_path_factory, "checkout") as run:
        yield run


async def test_a_worker_killed_mid_orders_is_replaced_and_the_orders_finish(
    stack: DevRun, http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=30)
    shoppers = await shoppers_with(http, item, 12)
    # Slow Stripe down so that orders are surely in flight when the worker dies.
    await http.put("/_sandbox/stripe/faults", json={"latencyMs": 400})
    placed = await asyncio.gather(*(place(http, s) for s in shoppers))
    await wait_for(
        http, shoppers[0].headers, placed[0]["id"], {"reserved", "payment_authorized", "confirmed"}
    )
    [victim] = worker_processes(stack)
    os.kill(victim.pid, signal.SIGKILL)
    await asyncio.sleep(1)
    await http.delete("/_sandbox/stripe/faults")

    orders = await asyncio.gather(
        *(
            wait_for(http, s.headers, p["id"], within=120)
            for s, p in zip(shoppers, placed, strict=True)
        )
    )
    assert [o["status"] for o in orders] == ["fulfillment_queued"] * len(orders)
    [replacement] = worker_processes(stack)
    assert replacement.pid != victim.pid
    assert "restarting it" in stack.output()
    for order in orders:
        [intent] = await intents_for(http, order["id"])
        assert intent["status"] == "succeeded"
        assert intent["amount_received"] == order["totals"]["total"]
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (30 - len(orders), 0)


# Three shoppers for each unit, all placing at once: an oversell, a unit reserved twice or
# one left reserved shows as more or fewer than ten orders. A hundred proved no more and
# took a minute and a quarter of a busy machine (polling ten times a second each).
RACERS = 30


async def test_thirty_shoppers_racing_for_ten_units(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=10)
    shoppers = await shoppers_with(http, item, RACERS)
    placed = await asyncio.gather(*(place(http, s) for s in shoppers))
    orders = await asyncio.gather(
        *(
            wait_for(http, s.headers, p["id"], within=300, poll=0.5)
            for s, p in zip(shoppers, placed, strict=True)
        )
    )
    outcomes = Counter((o["status"], o["failureCode"]) for o in orders)
    assert outcomes == {("fulfillment_queued", None): 10, ("failed", "out_of_stock"): RACERS - 10}
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (0, 0)
    # Nobody who got nothing was charged.
    for order in orders:
        captured = [i for i in await intents_for(http, order["id"]) if i["status"] == "succeeded"]
        assert len(captured) == (1 if order["status"] == "fulfillment_queued" else 0)
