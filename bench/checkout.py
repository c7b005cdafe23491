"""``shop bench checkout``: orders per second and placement-to-confirmation latency of the
whole checkout (API, ``OrderWorkflow`` on the stack's workers, the Stripe sandbox).

Setup, untimed: a staff account (registered through the API, promoted in the database),
one product with enough stock, N shoppers registered and signed in in parallel, each
with one unit in the cart. Timed: N ``POST /api/orders`` with C orders in flight at a
time (closed loop: a client places its next order once the previous one has settled,
after ``pause`` seconds if given),
each followed until it settles: by default with the long-poll (``GET`` with
``If-None-Match``, ``Prefer: wait=30`` and ``?until=``, answered when the order is
confirmed, then when it settles), or with
``status="poll"`` by the old polling, kept for comparison.

Latencies come from the order's timeline, not from polling: the ``createdAt`` of the
first ``confirmed`` (or ``fulfillment_queued``) entry minus the moment the POST was sent.
That compares the load generator's clock with the server's, so it is exact when both run
on one host (the stack's own address); the server-only figure (order row created to
confirmed) is printed alongside. So the poll interval does not change the latencies; it
only adds idle time to the closed loop and load on the API being measured (20 clients
polling every 50 ms are 400 requests/s on the same cores), hence 500 ms, doubling up to
``poll_max`` while the order is not settled (a client that keeps asking every 500 ms
asks a slow order fifty times, and its questions are what makes it slow). Throughput
counts orders that reached ``confirmed`` or later, over the wall time from the first
POST to the last order's final timeline entry.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.checkout_setup import (
    Shopper,
    check_status,
    shoppers,
    staff_headers,
    stocked_product,
    wait_for_onboarding,
)
from bench.stack_cost import (
    API,
    WorkflowCensus,
    cpu_lines,
    cpu_used,
    own_cpu_seconds,
    stack_processes,
)
from core.settings import Settings

ADDRESS = {"street": "123 Main St", "city": "Boston", "state": "MA", "zip": "02101"}
SETTLED = frozenset({"fulfillment_queued", "failed", "cancelled"})
# How a client learns that its order changed.
LONG_POLL = "long-poll"
POLL = "poll"
FOLLOW_MODES = (LONG_POLL, POLL)
# Seconds one long-poll may wait (the API's maximum by default).
LONG_POLL_WAIT = 30
CONFIRMED_OR_LATER = ("confirmed", "fulfillment_queued")


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def percentile(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[p - 1]


@dataclass
class OrderSample:
    status: str
    failure_code: str | None
    post_seconds: float  # the 202 answer
    to_confirmed: float | None  # POST sent -> first confirmed-or-later timeline entry
    created_to_confirmed: float | None  # order row created -> the same entry (server clock)
    to_settled: float | None  # POST sent -> the final timeline entry
    settled_at: datetime | None  # server time of the final timeline entry
    order_id: str = ""
    status_reads: int = 0  # GET /api/orders/{id} the client sent until it settled


@dataclass
class CheckoutResult:
    orders: int
    concurrency: int
    setup_seconds: float
    started_at: datetime
    samples: list[OrderSample] = field(repr=False)
    follow: str = LONG_POLL
    # CPU seconds the API's processes used during the timed part (None: not on this host).
    api_cpu_seconds: float | None = None
    # CPU seconds each of the stack's processes used then, by role (``bench.stack_cost``).
    stack_cpu: dict[str, float] = field(default_factory=dict)
    # CPU seconds this process (the shoppers' clients) used then: not the stack's.
    bench_cpu_seconds: float | None = None
    # When the timed part ended, and the workflows started in it (filled by the caller).
    ended_at: datetime | None = None
    census: WorkflowCensus = field(default_factory=WorkflowCensus)

    @property
    def completed(self) -> list[OrderSample]:
        return [s for s in self.samples if s.to_confirmed is not None]

    @property
    def seconds(self) -> float:
        ends = [s.settled_at for s in self.samples if s.settled_at is not None]
        return (max(ends) - self.started_at).total_seconds() if ends else 0.0

    @property
    def orders_per_second(self) -> float:
        return len(self.completed) / self.seconds if self.seconds else 0.0

    def cpu_per_order_ms(self) -> float | None:
        """Every stack process's CPU per order plus the bench's clients' (None: the stack
        is not on this host)."""
        if not self.stack_cpu or self.bench_cpu_seconds is None or not self.samples:
            return None
        return (sum(self.stack_cpu.values()) + self.bench_cpu_seconds) / len(self.samples) * 1000

    def failures(self) -> dict[str, int]:
        counts = Counter(
            s.failure_code or s.status for s in self.samples if s.status in ("failed", "cancelled")
        )
        return dict(sorted(counts.items()))

    def unsettled(self) -> dict[str, int]:
        return dict(Counter(s.status for s in self.samples if s.status not in SETTLED))

    def lines(self) -> list[str]:
        done = self.completed

        def row(label: str, values: list[float]) -> str:
            return (
                f"  {label:<26} p50 {percentile(values, 50) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 95) * 1000:7.1f} ms   "
                f"p99 {percentile(values, 99) * 1000:7.1f} ms"
            )

        lines = [
            f"checkout: {self.orders} orders, {self.concurrency} in flight, "
            f"{self.seconds:.1f} s (setup {self.setup_seconds:.1f} s, untimed)",
            f"  completed {len(done)} (confirmed or later): {self.orders_per_second:.1f} orders/s",
            f"  failed    {sum(self.failures().values())} by failureCode: {self.failures()}",
        ]
        if self.unsettled():
            lines.append(f"  not settled in time: {self.unsettled()}")
        lines += [
            row("POST → confirmed", [s.to_confirmed for s in done if s.to_confirmed is not None]),
            row(
                "order created → confirmed",
                [s.created_to_confirmed for s in done if s.created_to_confirmed is not None],
            ),
            row("POST → settled", [s.to_settled for s in self.samples if s.to_settled is not None]),
            row("POST answered (202)", [s.post_seconds for s in self.samples]),
        ]
        reads = sum(s.status_reads for s in self.samples) / max(len(self.samples), 1)
        lines.append(f"  status reads ({self.follow}): {reads:.1f} GET per order")
        if self.api_cpu_seconds is not None and self.samples:
            per_order = self.api_cpu_seconds / len(self.samples) * 1000
            lines.append(
                f"  API processes' CPU: {self.api_cpu_seconds:.1f} s, {per_order:.0f} ms per order"
            )
        lines += cpu_lines(self.stack_cpu, len(self.samples))
        if self.bench_cpu_seconds is not None and self.samples:
            per_order = self.bench_cpu_seconds / len(self.samples) * 1000
            lines.append(
                f"  bench process (the clients), not counted above: {per_order:.0f} ms per order"
            )
        lines += self.census.lines(len(self.samples))
        return lines


async def place_and_follow(
    http: httpx.AsyncClient,
    shopper: Shopper,
    *,
    poll: float,
    within: float,
    poll_max: float | None = None,
    follow: str = LONG_POLL,
) -> OrderSample:
    sent_at = datetime.now(UTC)
    started = time.perf_counter()
    response = await http.post(
        "/api/orders",
        headers=shopper.headers,
        json={
            "cartId": shopper.cart_id,
            "shippingAddress": ADDRESS,
            "paymentMethod": {"type": "card", "token": "pm_card_visa"},
        },
    )
    placed = check_status(response, 202)
    post_seconds = time.perf_counter() - started
    deadline = started + within
    if follow == LONG_POLL:
        order, reads = await _long_poll(http, shopper, placed, response.headers, deadline)
    else:
        order, reads = await _poll(http, shopper, placed, poll, poll_max, deadline)
    timeline = order["timeline"]
    confirmed = [_ts(e["createdAt"]) for e in timeline if e["status"] in CONFIRMED_OR_LATER]
    settled = order["status"] in SETTLED
    last = max(_ts(e["createdAt"]) for e in timeline) if settled and timeline else None
    created = _ts(order["createdAt"])
    return OrderSample(
        status=order["status"],
        failure_code=order.get("failureCode"),
        post_seconds=post_seconds,
        to_confirmed=(min(confirmed) - sent_at).total_seconds() if confirmed else None,
        created_to_confirmed=(min(confirmed) - created).total_seconds() if confirmed else None,
        to_settled=(last - sent_at).total_seconds() if last else None,
        settled_at=last,
        order_id=str(placed["id"]),
        status_reads=reads,
    )


async def _poll(
    http: httpx.AsyncClient,
    shopper: Shopper,
    order: dict[str, Any],
    poll: float,
    poll_max: float | None,
    deadline: float,
) -> tuple[dict[str, Any], int]:
    """Ask every ``poll`` seconds, doubling up to ``poll_max``, until settled."""
    reads = 0
    delay, ceiling = poll, max(poll, poll_max or poll)
    while order["status"] not in SETTLED and time.perf_counter() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, ceiling)
        order = check_status(
            await http.get(f"/api/orders/{order['id']}", headers=shopper.headers), 200
        )
        reads += 1
    return order, reads


async def _long_poll(
    http: httpx.AsyncClient,
    shopper: Shopper,
    order: dict[str, Any],
    placed_headers: httpx.Headers,
    deadline: float,
) -> tuple[dict[str, Any], int]:
    """Wait with ``If-None-Match`` and ``Prefer: wait`` for the statuses measured: until
    confirmed, then until settled (``?until=``: the changes between are not answered)."""
    reads = 0
    etag = placed_headers.get("etag")
    while order["status"] not in SETTLED and time.perf_counter() < deadline:
        wait = max(1, min(LONG_POLL_WAIT, int(deadline - time.perf_counter())))
        conditional = {"If-None-Match": etag} if etag else {}
        awaited = "fulfillment_queued" if order["status"] in CONFIRMED_OR_LATER else "confirmed"
        response = await http.get(
            f"/api/orders/{order['id']}",
            params={"until": awaited},
            headers=shopper.headers | conditional | {"Prefer": f"wait={wait}"},
        )
        reads += 1
        if response.status_code == 304:
            continue
        order = check_status(response, 200)
        etag = response.headers.get("etag")
    return order, reads


async def run(
    base_url: str,
    settings: Settings,
    *,
    orders: int = 200,
    concurrency: int = 20,
    poll: float = 0.5,
    poll_max: float | None = None,
    within: float = 120,
    follow: str = LONG_POLL,
    pause: float = 0,
    progress: Any = None,
) -> CheckoutResult:
    say = progress or (lambda _message: None)
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        setup_started = time.perf_counter()
        staff = await staff_headers(http, settings)
        product_id = await stocked_product(http, staff, orders + 10)
        say(f"setup: product {product_id}, registering {orders} shoppers…")
        ready = await shoppers(http, orders, product_id)
        await wait_for_onboarding(settings)
        setup_seconds = time.perf_counter() - setup_started
        say(f"setup done in {setup_seconds:.1f} s; placing {orders} orders, {concurrency} at once…")

        queue: asyncio.Queue[Shopper] = asyncio.Queue()
        for shopper in ready:
            queue.put_nowait(shopper)
        samples: list[OrderSample] = []

        async def client_loop() -> None:
            while not queue.empty():
                shopper = queue.get_nowait()
                samples.append(
                    await place_and_follow(
                        http, shopper, poll=poll, within=within, poll_max=poll_max, follow=follow
                    )
                )
                if pause and not queue.empty():
                    # What the settled order set off (fulfilment, event deliveries) runs
                    # now, not under the next order.
                    await asyncio.sleep(pause)

        stack = stack_processes(base_url)
        cpu_before, bench_before = stack.cpu_seconds(), own_cpu_seconds()
        started_at = datetime.now(UTC)
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        used = cpu_used(cpu_before, stack.cpu_seconds())
        bench_used = own_cpu_seconds() - bench_before
    return CheckoutResult(
        orders,
        concurrency,
        setup_seconds,
        started_at,
        samples,
        follow,
        used.get(API),
        stack_cpu=used,
        bench_cpu_seconds=bench_used,
        ended_at=datetime.now(UTC),
    )
