"""No customer is refused because one of our processes died (issue 10, section 6).

As an operator would: 40 orders in flight on ``shop dev --workers 2``, both workers
SIGKILLed a second and a half apart, a fresh ``shop worker`` started beside the ones
``shop dev`` restarts. Every order is confirmed and captured once, and the stock is
exact: the attempts lost with the workers were noticed by their missing heartbeats and
retried without using up the steps' own retry budget.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from temporalio.api.enums.v1 import TimeoutType

from core.settings import Settings
from temporal.client import connect
from tests.e2e.conftest import (
    SHOP,
    DevRun,
    clean_env,
    running_stack,
    shoppers_with,
    worker_processes,
)
from tests.orders.helpers import (
    SETTLED,
    activity_runs,
    intents_for,
    place,
    product,
    stock,
    wait_for,
)

pytestmark = pytest.mark.e2e

ORDERS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    # The defaults (3 attempts, 30 s a step, 5 s heartbeats): nothing tuned for the test.
    with running_stack(tmp_path_factory, "crashes", workers=2) as run:
        yield run


@pytest.fixture
def fresh_worker(stack: DevRun) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts a ``shop worker`` for the stack, as an operator would; stopped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with open(stack.data_dir.parent / "fresh-worker.log", "ab") as log:
            proc = subprocess.Popen(
                [SHOP, "worker", "--data-dir", str(stack.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                start_new_session=True,
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _lost_attempts(stack: DevRun, order_ids: list[str]) -> Counter[str]:
    """Activities retried after a heartbeat timeout (their worker died), by type."""
    client = await connect(Settings(temporal_address=f"127.0.0.1:{stack.ports['temporal']}"))
    lost: Counter[str] = Counter()
    for order_id in order_ids:
        for run in await activity_runs(client, order_id):
            if run.timeout_before == TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
                lost[run.activity] += 1
    return lost


async def test_both_workers_killed_mid_orders_cost_time_never_an_order(
    stack: DevRun,
    http: httpx.AsyncClient,
    staff: dict[str, str],
    fresh_worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    item = await product(http, staff, stock=ORDERS + 10)
    shoppers = await shoppers_with(http, item, ORDERS)
    # Stripe a little slow, so that payment steps are surely running when workers die.
    await http.put("/_sandbox/stripe/faults", json={"latencyMs": 300})
    placed = await asyncio.gather(*(place(http, s) for s in shoppers))
    await wait_for(http, shoppers[0].headers, placed[0]["id"], {"reserved", *SETTLED}, poll=0.2)

    first, second = worker_processes(stack)
    os.kill(first.pid, signal.SIGKILL)
    await asyncio.sleep(1.5)
    os.kill(second.pid, signal.SIGKILL)
    worker = fresh_worker()
    await http.delete("/_sandbox/stripe/faults")

    orders = await asyncio.gather(
        *(
            wait_for(http, s.headers, p["id"], within=150, poll=1)
            for s, p in zip(shoppers, placed, strict=True)
        )
    )
    outcomes = Counter((o["status"], o["failureCode"]) for o in orders)
    # Any order that did not make it, with its timeline: the step and the provider's words.
    astray = [(o["id"], o["timeline"]) for o in orders if o["status"] != "fulfillment_queued"]
    assert outcomes == {("fulfillment_queued", None): ORDERS}, astray
    for order in orders:
        [intent] = await intents_for(http, order["id"])
        assert intent["status"] == "succeeded"
        assert intent["amount_received"] == order["totals"]["total"]
        ledger = (await http.get(f"/api/orders/{order['id']}", headers=staff)).json()
        assert "stock released" not in [e["message"] for e in ledger["timeline"]]
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (10, 0)
    # The kills did hit running steps, and their loss was noticed by heartbeats.
    lost = await _lost_attempts(stack, [o["id"] for o in orders])
    assert sum(lost.values()) > 0, lost
    assert worker.poll() is None  # the fresh worker is still serving
