"""Checkout against the real ``shop dev`` stack, as clients and operators meet it.

A worker killed with SIGKILL in the middle of orders loses nothing: the supervisor
starts a new one, which finishes them, and every order is charged exactly once. A
hundred shoppers racing for ten units produce ten orders and ninety ``out_of_stock``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psutil
import pytest

from cli.stack.process import free_port
from tests.e2e.conftest import SHOP, DevRun, clean_env
from tests.factories import PASSWORD, bearer, login, unique_email
from tests.orders.helpers import (
    Shopper,
    intents_for,
    place,
    product,
    shopper_with_cart,
    stock,
    wait_for,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    ports = {name: free_port() for name in ("api", "temporal", "ui", "postgres", "redis")}
    run = DevRun(
        data_dir=tmp_path_factory.mktemp("checkout") / "data",
        ports=ports,
        # A step whose worker died is retried after this long, not the default 30 s.
        env={"ORDER_STEP_TIMEOUT_SECONDS": "5"},
    )
    run.start()
    try:
        run.wait_ready()
        yield run
    finally:
        run.kill_everything()


@pytest.fixture
async def http(stack: DevRun) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=stack.api, timeout=60, limits=limits) as client:
        yield client
        await client.delete("/_sandbox/stripe/faults")


@pytest.fixture
async def staff(stack: DevRun, http: httpx.AsyncClient) -> dict[str, str]:
    email = unique_email("e2e-staff")
    await asyncio.to_thread(
        subprocess.run,
        [SHOP, "admin", "create", email, "--password", PASSWORD, "--data-dir", str(stack.data_dir)],
        env=clean_env(),
        check=True,
        capture_output=True,
    )
    return bearer(await login(http, email=email))


def _workers(stack: DevRun) -> list[psutil.Process]:
    return [p for p in stack.descendants() if "cli.main worker" in " ".join(p.cmdline())]


async def _shoppers(http: httpx.AsyncClient, item: dict[str, Any], count: int) -> list[Shopper]:
    gate = asyncio.Semaphore(10)

    async def one() -> Shopper:
        async with gate:
            return await shopper_with_cart(http, [(item, 1)])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_a_worker_killed_mid_orders_is_replaced_and_the_orders_finish(
    stack: DevRun, http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=30)
    shoppers = await _shoppers(http, item, 12)
    # Slow Stripe down so that orders are surely in flight when the worker dies.
    await http.put("/_sandbox/stripe/faults", json={"latencyMs": 400})
    placed = await asyncio.gather(*(place(http, s) for s in shoppers))
    await wait_for(
        http, shoppers[0].headers, placed[0]["id"], {"reserved", "payment_authorized", "confirmed"}
    )
    [victim] = _workers(stack)
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
    [replacement] = _workers(stack)
    assert replacement.pid != victim.pid
    assert "restarting it" in stack.output()
    for order in orders:
        [intent] = await intents_for(http, order["id"])
        assert intent["status"] == "succeeded"
        assert intent["amount_received"] == order["totals"]["total"]
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (30 - len(orders), 0)


async def test_a_hundred_shoppers_racing_for_ten_units(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=10)
    shoppers = await _shoppers(http, item, 100)
    placed = await asyncio.gather(*(place(http, s) for s in shoppers))
    orders = await asyncio.gather(
        *(
            wait_for(http, s.headers, p["id"], within=300)
            for s, p in zip(shoppers, placed, strict=True)
        )
    )
    outcomes = Counter((o["status"], o["failureCode"]) for o in orders)
    assert outcomes == {("fulfillment_queued", None): 10, ("failed", "out_of_stock"): 90}
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (0, 0)
    # Nobody who got nothing was charged.
    for order in orders:
        captured = [i for i in await intents_for(http, order["id"]) if i["status"] == "succeeded"]
        assert len(captured) == (1 if order["status"] == "fulfillment_queued" else 0)
