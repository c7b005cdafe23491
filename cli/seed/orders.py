"""Seeded orders through the real checkout: ``Checkout.place``, then ``OrderWorkflow`` run by
the stack's workers (or by workers in this process when none serves the order queues),
payments through the Stripe sandbox on the API. Seeded customers end up with at least the
target number of orders between them; once every order has settled, the new ones are
moved into the past (``cli.seed.backdating``)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from temporalio.client import Client

from cli.seed.backdating import Backdater, PlacedOrder, PlannedOrder, past_times
from cli.seed.part import SeedPart
from core.db import transaction
from core.errors import DependencyUnavailable
from services.seeding import CollectingRecorder, SeedCheckout, SeededProduct, SeedRecords
from temporal.clients import TemporalConnection, WorkflowStarts

# How many orders are placed at once, over how many past days they are spread, and the
# share paid with Stripe's always-declined test card.
ORDER_CONCURRENCY = 16
ORDER_DAYS = 90
DECLINED_SHARE = 0.05
CARD, DECLINED_CARD = "pm_card_visa", "pm_card_chargeDeclined"
ORDER_PRODUCTS = 120  # the products orders are drawn from (they get stock)
STOCK_MARGIN = 25  # above what the orders take, so the low-stock line is not crossed
ORDER_WAIT_SECONDS = 300.0
FALLBACK_ADDRESS = {"street": "1 Seed Street", "city": "Boston", "state": "MA", "zip": "02101"}


@dataclass(frozen=True)
class OrdersSeeded:
    added: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    in_process_workers: bool = False


class OrderSeeder:
    """Orders through the real checkout and workflow, then moved into the past."""

    def __init__(self, seeder: SeedPart, *, concurrency: int = ORDER_CONCURRENCY) -> None:
        self.seeder = seeder
        self.sessions = seeder.sessions
        self.settings = seeder.settings
        self.concurrency = concurrency

    async def run(
        self,
        rng: random.Random,
        user_ids: list[str],
        count: int,
        *,
        declined_share: float = DECLINED_SHARE,
        days: int = ORDER_DAYS,
    ) -> OrdersSeeded:
        if count <= 0:
            return OrdersSeeded()
        if not user_ids:
            self.seeder.console.print("no seeded customers to place orders for (--users 0)")
            return OrdersSeeded()
        async with transaction(self.sessions) as session:
            wanted = count - await SeedRecords(session).orders_of(user_ids)
        if wanted <= 0:
            return OrdersSeeded()
        pool = await self._pool(rng)
        plans = [self._plan(rng, user_ids, pool, declined_share) for _ in range(wanted)]
        times = past_times(rng, wanted, days, datetime.now(UTC))
        browsing = random.Random(rng.getrandbits(64))
        await self._stock(plans)
        await self._check_api()
        from temporal.client import connect

        client = await connect(self.settings)
        in_process = not await self.workers_present(client)
        if in_process:
            self.seeder.console.print(
                "no worker serves the order queues: running workers in this process"
            )
        async with self.workers(client, in_process):
            placed = await self._place_all(client, plans)
        backdater = Backdater(self.sessions, self.settings, self.seeder.console)
        await backdater.payments_quiet([p.order_id for p in placed])
        await backdater.backdate(placed, times, browsing, user_ids, pool, days)
        return OrdersSeeded(
            added=len(placed),
            by_status=dict(Counter(p.status for p in placed)),
            failures=dict(Counter(p.failure_code or p.status for p in placed if p.failure_code)),
            in_process_workers=in_process,
        )

    # --- planning ---------------------------------------------------------------------

    async def _pool(self, rng: random.Random) -> list[SeededProduct]:
        async with transaction(self.sessions) as session:
            products = await SeedRecords(session).products(5000)
        if not products:
            raise DependencyUnavailable("there are no seeded products to order: seed --products")
        return rng.sample(products, min(ORDER_PRODUCTS, len(products)))

    @staticmethod
    def _plan(
        rng: random.Random, user_ids: list[str], pool: list[SeededProduct], declined_share: float
    ) -> PlannedOrder:
        user_id = rng.choice(user_ids)
        size = min(len(pool), rng.choices([1, 2, 3, 4], weights=[55, 28, 12, 5])[0])
        products = rng.sample(pool, size)
        lines = [(p, rng.choices([1, 2, 3], weights=[80, 15, 5])[0]) for p in products]
        token = DECLINED_CARD if rng.random() < declined_share else CARD
        return PlannedOrder(user_id, lines, token, rng.getrandbits(64))

    async def _stock(self, plans: list[PlannedOrder]) -> None:
        demand: Counter[str] = Counter()
        for plan in plans:
            for product, quantity in plan.lines:
                demand[product.id] += quantity
        async with transaction(self.sessions) as session:
            await SeedCheckout(session, self.settings).stock_for(demand, STOCK_MARGIN)

    # --- the stack --------------------------------------------------------------------

    async def _check_api(self) -> None:
        """Payments go to the Stripe sandbox on the API unless a real key is set."""
        if self.settings.stripe_secret_key is not None:
            return
        url = f"{self.settings.api_base_url}/health"
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                (await http.get(url)).raise_for_status()
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(
                f"seeding orders needs the running stack (`shop dev`): the Stripe sandbox "
                f"is on the API, and {url} did not answer ({exc})"
            ) from None

    @staticmethod
    async def workers_present(client: Client) -> bool:
        """Does some worker poll every queue an order passes through?"""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        from temporal.queues import ALL_QUEUES, TaskQueue

        wanted = [(TaskQueue.ORDERS, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)] + [
            (queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) for queue in ALL_QUEUES
        ]
        for queue, kind in wanted:
            described = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueueRef(name=str(queue)),
                    task_queue_type=kind,
                )
            )
            if not described.pollers:
                return False
        return True

    @asynccontextmanager
    async def workers(self, client: Client, in_process: bool) -> AsyncIterator[None]:
        if not in_process:
            yield
            return
        from temporal.queues import ALL_QUEUES
        from workers.main import running_workers, worker_deps

        async with (
            worker_deps(self.settings, client) as deps,
            running_workers(client, deps, ALL_QUEUES),
        ):
            yield

    # --- placing ----------------------------------------------------------------------

    async def _place_all(self, client: Client, plans: list[PlannedOrder]) -> list[PlacedOrder]:
        """A customer has one cart, so each customer's orders go one after another; the
        customers' sequences run side by side, ``concurrency`` orders at a time."""
        by_user: dict[str, list[PlannedOrder]] = defaultdict(list)
        for plan in plans:
            by_user[plan.user_id].append(plan)
        gate = asyncio.Semaphore(self.concurrency)
        placed: list[PlacedOrder] = []
        with self.seeder.tally("orders", len(plans)) as tally:

            async def customer(sequence: list[PlannedOrder]) -> None:
                for plan in sequence:
                    async with gate:
                        placed.append(await self._place(client, plan))
                    tally.add()

            await asyncio.gather(*(customer(seq) for seq in by_user.values()))
        return placed

    async def _place(self, client: Client, plan: PlannedOrder) -> PlacedOrder:
        starts = WorkflowStarts(TemporalConnection.of(client), self.sessions, call_seconds=10)
        lines = [(product.id, quantity) for product, quantity in plan.lines]
        for _ in range(3):
            recorder = CollectingRecorder(self.settings.analytics_enabled)
            async with transaction(self.sessions) as session:
                order, start = await SeedCheckout(session, self.settings).place(
                    plan.user_id, lines, plan.token, FALLBACK_ADDRESS, recorder
                )
            if start is None:
                # An order of an earlier, interrupted run still holds this cart.
                await self._settled(client, order.id)
                continue
            if not await starts.start(start):
                raise DependencyUnavailable(f"could not start the workflow of {order.id}")
            result = PlacedOrder(plan, order.id, recorder.ids("add_to_cart"))
            await self._settled(client, order.id)
            async with transaction(self.sessions) as session:
                outcome = await SeedCheckout(session, self.settings).outcome(order.id)
            result.status, result.failure_code = outcome.status, outcome.failure_code
            return result
        raise DependencyUnavailable(f"the cart of {plan.user_id} stays held by a live order")

    @staticmethod
    async def _settled(client: Client, order_id: str) -> None:
        from temporal.clients.orders import workflow_id

        handle = client.get_workflow_handle(workflow_id(order_id))
        try:
            await asyncio.wait_for(handle.result(), ORDER_WAIT_SECONDS)
        except TimeoutError:
            raise DependencyUnavailable(
                f"order {order_id} did not settle within {ORDER_WAIT_SECONDS:.0f} s: "
                "are the workers running?"
            ) from None
