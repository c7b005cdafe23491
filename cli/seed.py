"""``shop seed``: realistic, deterministic demo data written through the services.

The same ``--seed`` gives the same catalogue, users and reviews. Running it again adds
nothing that exists (SKUs, slugs and emails are deterministic), so it is safe to repeat.

``--orders N`` places orders for the seeded customers through the real checkout
(``Checkout.place``, then ``OrderWorkflow`` run by the stack's workers, payments through
the Stripe sandbox on the API), so it needs the running stack (``shop dev``). When it
finds no worker on the order queues it runs workers in its own process. Once every order
has settled they are spread over the past ``ORDER_DAYS`` days together with their
timeline, payments and analytics, and a browsing funnel (product views and adds to cart,
more than there are orders) is written with matching dates. Seeded customers end up with
at least N orders between them; a second run adds only what is missing.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import text
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from core.db import SessionFactory, create_engine, create_session_factory, transaction
from core.errors import DependencyUnavailable
from core.settings import Settings
from models.analytics import AnalyticsEvent
from models.catalog import Category, CategoryCreate, Product, ProductCreate, ReviewCreate
from models.inventory import MovementKind
from models.orders import Order, OrderCreate, PaymentMethodIn
from models.users import Address, AddressCreate, Role, User, UserCreate
from models.workflow_starts import WorkflowStart
from services import workflow_starts
from services.addresses import AddressService
from services.analytics import AnalyticsRecorder
from services.carts import CartService
from services.catalog.categories import CategoryService
from services.catalog.products import ProductService
from services.catalog.reviews import AlreadyReviewed, NoPurchases, ReviewService
from services.checkout import Checkout
from services.inventory import InventoryService, StockRepository
from services.users import EmailTaken, RegistrationContext, UserService

# A two-level taxonomy: (parent, [children]).
TAXONOMY: list[tuple[str, list[str]]] = [
    ("Electronics", ["Headphones", "Speakers", "Cameras", "Phone Accessories", "Cables"]),
    ("Home", ["Lighting", "Kitchen", "Bedding", "Decor"]),
    ("Outdoors", ["Camping", "Cycling", "Garden"]),
    ("Clothing", ["Jackets", "Shoes", "Hats", "Bags"]),
    ("Office", ["Desks", "Chairs", "Stationery"]),
]
NOUNS = {
    "Headphones": ["Headphones", "Earbuds", "Headset"],
    "Speakers": ["Speaker", "Soundbar", "Subwoofer"],
    "Cameras": ["Camera", "Action Cam", "Lens"],
    "Phone Accessories": ["Phone Case", "Charger", "Power Bank"],
    "Cables": ["USB-C Cable", "HDMI Cable", "Lightning Cable"],
    "Lighting": ["Desk Lamp", "Floor Lamp", "LED Strip"],
    "Kitchen": ["Kettle", "Chef Knife", "Coffee Grinder"],
    "Bedding": ["Duvet", "Pillow", "Sheet Set"],
    "Decor": ["Vase", "Wall Clock", "Picture Frame"],
    "Camping": ["Tent", "Sleeping Bag", "Camp Stove"],
    "Cycling": ["Bike Light", "Helmet", "Bike Lock"],
    "Garden": ["Hose", "Pruner", "Planter"],
    "Jackets": ["Rain Jacket", "Down Jacket", "Fleece"],
    "Shoes": ["Running Shoes", "Boots", "Sneakers"],
    "Hats": ["Beanie", "Cap", "Sun Hat"],
    "Bags": ["Backpack", "Tote Bag", "Duffel"],
    "Desks": ["Standing Desk", "Desk Mat", "Monitor Stand"],
    "Chairs": ["Office Chair", "Stool", "Footrest"],
    "Stationery": ["Notebook", "Fountain Pen", "Planner"],
}
ADJECTIVES = [
    "Wireless", "Compact", "Premium", "Classic", "Ultralight", "Rugged", "Smart", "Eco",
    "Pro", "Vintage", "Foldable", "Waterproof", "Ergonomic", "Silent", "Heavy-Duty", "Mini",
]  # fmt: skip
MATERIALS = ["Bamboo", "Steel", "Oak", "Linen", "Carbon", "Wool", "Ceramic", "Aluminium", "Cotton"]
COLOURS = ["Black", "White", "Sage", "Navy", "Sand", "Graphite", "Coral", "Olive"]
FEATURES = [
    "built to last for years of daily use",
    "designed with a minimal footprint",
    "tested in demanding conditions",
    "made from responsibly sourced materials",
    "easy to clean and maintain",
    "backed by a two-year warranty",
    "quiet, efficient and energy-saving",
    "a favourite of our customers",
]
FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
         "Edsger", "Radia", "Tim", "Katherine", "John", "Hedy", "Guido"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov",
        "Ritchie", "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Johnson", "Backus"]  # fmt: skip
CITIES = [("Boston", "MA", "02101", "US"), ("Austin", "TX", "73301", "US"),
          ("Toronto", "ON", "M5H 2N2", "CA"), ("London", None, "SW1A 1AA", "GB"),
          ("Berlin", None, "10115", "DE"), ("Lyon", None, "69001", "FR")]  # fmt: skip
REVIEW_TITLES = {
    1: ["Disappointed", "Broke quickly"], 2: ["Not great", "Expected more"],
    3: ["It's fine", "Does the job"], 4: ["Very good", "Happy with it"],
    5: ["Excellent", "Love it", "Best purchase this year"],
}  # fmt: skip
SEED_PASSWORD = "seeded customer password 2026"
BATCH = 2000
# Orders: how many are placed at once, over how many past days they are spread, and the
# share paid with Stripe's always-declined test card.
ORDER_CONCURRENCY = 16
ORDER_DAYS = 90
DECLINED_SHARE = 0.05
CARD, DECLINED_CARD = "pm_card_visa", "pm_card_chargeDeclined"
ORDER_PRODUCTS = 120  # the products orders are drawn from (they get stock)
ORDER_WAIT_SECONDS = 300.0
FALLBACK_ADDRESS = {"street": "1 Seed Street", "city": "Boston", "state": "MA", "zip": "02101"}


@dataclass(frozen=True)
class OrdersSeeded:
    added: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    in_process_workers: bool = False


@dataclass(frozen=True)
class SeedReport:
    categories: int
    products_added: int
    users_added: int
    reviews_added: int
    staff_email: str
    staff_password: str | None
    orders: OrdersSeeded = field(default_factory=OrdersSeeded)


def _product(rng: random.Random, n: int, category: str, category_id: str) -> ProductCreate:
    noun = rng.choice(NOUNS[category])
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {noun}"
    colour = rng.choice(COLOURS)
    features = rng.sample(FEATURES, 2)
    description = (
        f"The {name.lower()} in {colour.lower()}: {features[0]}, {features[1]}. "
        f"Part of our {category.lower()} range."
    )
    # Log-uniform prices from 4.99 to 1,499.99, ending in .99 or .00.
    price = int(10 ** rng.uniform(2.7, 5.18)) // 100 * 100 + rng.choice([99, 0, 99, 99])
    compare = price + rng.randint(1, 5) * 500 if rng.random() < 0.15 else None
    return ProductCreate(
        sku=f"SW-{n:07d}",
        name=name,
        description=description,
        category_id=category_id,
        price=price,
        currency="USD",
        compare_at_price=compare,
        images=[f"https://images.shopweave.example/products/SW-{n:07d}/1.jpg"],
        attributes={"colour": colour, "material": name.split()[1]},
        low_stock_threshold=rng.choice([5, 10, 20]),
        auto_reorder=rng.random() < 0.3,
        reorder_quantity=rng.choice([25, 50, 100]),
    )


class Seeder:
    def __init__(self, sessions: SessionFactory, settings: Settings, console: Console) -> None:
        self.sessions = sessions
        self.settings = settings
        self.console = console

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    async def categories(self) -> list[tuple[str, str]]:
        """(leaf name, id) of every leaf category, created if missing."""
        leaves: list[tuple[str, str]] = []
        async with transaction(self.sessions) as session:
            service = CategoryService(session)
            for parent, children in TAXONOMY:
                parent_row = await self._category(service, parent, None)
                for child in children:
                    row = await self._category(service, child, parent_row.id)
                    leaves.append((child, row.id))
        return leaves

    @staticmethod
    async def _category(service: CategoryService, name: str, parent_id: str | None) -> Category:
        slug = name.lower().replace(" ", "-")
        existing = await service.categories.by_id_or_slug(slug)
        if existing is not None:
            return existing
        return await service.create(CategoryCreate(name=name, slug=slug, parent_id=parent_id))

    async def products(
        self,
        rng: random.Random,
        count: int,
        leaves: list[tuple[str, str]],
        *,
        first_number: int = 1,
    ) -> int:
        """``count`` products numbered from ``first_number`` (SKU ``SW-0000001``…)."""
        added = 0
        last = first_number + count - 1
        with self._progress() as progress:
            task = progress.add_task("products", total=count)
            for start in range(first_number, last + 1, BATCH):
                items = [
                    _product(rng, n, *rng.choice(leaves))
                    for n in range(start, min(start + BATCH - 1, last) + 1)
                ]
                async with transaction(self.sessions) as session:
                    added += await ProductService(session).create_many(items)
                progress.advance(task, len(items))
        async with transaction(self.sessions) as session:
            await ProductService(session).products.after_bulk_load()
        return added

    async def users(self, rng: random.Random, count: int) -> tuple[int, list[str]]:
        added, ids = 0, []
        analytics = AnalyticsRecorder(self.settings.analytics_enabled)
        with self._progress() as progress:
            task = progress.add_task("users", total=count)
            for n in range(1, count + 1):
                # Every draw happens whether or not the user exists already, so a second
                # run walks the same random sequence and adds nothing new.
                first, last = rng.choice(FIRST), rng.choice(LAST)
                city, state, zip_code, country = rng.choice(CITIES)
                street = f"{rng.randint(1, 999)} {rng.choice(LAST)} Street"
                email = f"customer{n:05d}@example.com"
                async with transaction(self.sessions) as session:
                    service = UserService(
                        session,
                        analytics=analytics,
                        password_min_length=self.settings.password_min_length,
                    )
                    try:
                        user = await service.register(
                            UserCreate(email=email, password=SEED_PASSWORD, name=f"{first} {last}"),
                            RegistrationContext(user_agent="shop seed", method="seed"),
                        )
                    except EmailTaken:
                        existing = await service.users.by_email(email)
                        if existing is not None:
                            ids.append(existing.id)
                        progress.advance(task)
                        continue
                    await AddressService(session).create(
                        user.id,
                        AddressCreate(
                            name=f"{first} {last}",
                            street=street,
                            city=city,
                            state=state,
                            zip=zip_code,
                            country=country,
                            is_default_shipping=True,
                            is_default_billing=True,
                        ),
                    )
                    ids.append(user.id)
                    added += 1
                progress.advance(task)
        return added, ids

    async def reviews(self, rng: random.Random, user_ids: list[str], count: int) -> int:
        if not user_ids or count == 0:
            return 0
        async with self.sessions() as session:
            product_ids = list(
                (
                    await session.exec(
                        select(Product.id).order_by(col(Product.sku)).limit(max(count, 1))
                    )
                ).all()
            )
        added = 0
        with self._progress() as progress:
            task = progress.add_task("reviews", total=count)
            for start in range(0, count, 200):
                async with transaction(self.sessions) as session:
                    service = ReviewService(session, NoPurchases())
                    for i in range(start, min(start + 200, count)):
                        rating = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]
                        try:
                            await service.create(
                                rng.choice(product_ids),
                                rng.choice(user_ids),
                                ReviewCreate(
                                    rating=rating,
                                    title=rng.choice(REVIEW_TITLES[rating]),
                                    body=f"{rng.choice(FEATURES).capitalize()}. Review #{i + 1}.",
                                ),
                            )
                            added += 1
                        except AlreadyReviewed:  # that user reviewed that product already
                            pass
                        progress.advance(task)
        return added

    async def staff(self) -> tuple[str, str | None]:
        email = "staff@shopweave.example"
        password = secrets.token_urlsafe(18)
        async with transaction(self.sessions) as session:
            service = UserService(
                session,
                analytics=AnalyticsRecorder(False),
                password_min_length=self.settings.password_min_length,
            )
            if await service.users.by_email(email) is not None:
                return email, None
            await service.register(
                UserCreate(email=email, password=password, name="Shop Staff"),
                RegistrationContext(user_agent="shop seed", method="seed"),
                role=Role.STAFF,
            )
        return email, password


# --- orders ---------------------------------------------------------------------------

# Relative weight of each hour of the day (UTC) for order and browsing times.
HOURLY = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 9, 10, 9, 8, 8, 9, 10, 12, 13, 12, 9, 5, 2]


@dataclass(frozen=True)
class PoolProduct:
    id: str
    category_id: str | None
    price: int


@dataclass(frozen=True)
class PlannedOrder:
    user_id: str
    lines: list[tuple[PoolProduct, int]]
    token: str
    noise: int  # seeds this order's browsing funnel


@dataclass
class PlacedOrder:
    plan: PlannedOrder
    order_id: str
    add_event_ids: list[str]
    status: str = ""
    failure_code: str | None = None


class _CollectingRecorder(AnalyticsRecorder):
    """Records as usual and remembers the rows, so their dates can be set later."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled)
        self.rows: list[AnalyticsEvent] = []

    async def track(
        self,
        session: AsyncSession,
        event: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> AnalyticsEvent | None:
        row = await super().track(
            session, event, user_id=user_id, session_id=session_id, properties=properties
        )
        if row is not None:
            self.rows.append(row)
        return row


def past_times(rng: random.Random, count: int, days: int, now: datetime) -> list[datetime]:
    """``count`` moments in the last ``days`` days, ascending: busier in the evening and
    somewhat busier lately, as a growing shop is."""
    times = []
    for _ in range(count):
        day = now - timedelta(days=int(days * rng.random() ** 1.3))
        at = day.replace(
            hour=rng.choices(range(24), weights=HOURLY)[0],
            minute=rng.randrange(60),
            second=rng.randrange(60),
            microsecond=rng.randrange(1_000_000),
        )
        times.append(at - timedelta(days=1) if at > now - timedelta(minutes=10) else at)
    return sorted(times)


def _view(product: PoolProduct) -> dict[str, Any]:
    return {"productId": product.id, "categoryId": product.category_id, "price": product.price}


def _add(product: PoolProduct, quantity: int) -> dict[str, Any]:
    return {"productId": product.id, "quantity": quantity, "price": product.price}


# Shift each order, its timeline, payment, payment history and the analytics events that
# name it by the same amount; every part reads the rows as they were before the statement.
BACKDATE_ORDERS = """
WITH target AS (
    SELECT t.id, t.at - o.created_at AS shift
    FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS t(id, at)
    JOIN orders o ON o.id = t.id
), timeline AS (
    UPDATE order_events e SET created_at = e.created_at + target.shift
    FROM target WHERE e.order_id = target.id
), paid AS (
    UPDATE payments p
    SET created_at = p.created_at + target.shift, updated_at = p.updated_at + target.shift
    FROM target WHERE p.order_id = target.id
), payment_history AS (
    UPDATE payment_events pe SET created_at = pe.created_at + target.shift
    FROM payments p JOIN target ON p.order_id = target.id
    WHERE pe.payment_id = p.id
), tracked AS (
    UPDATE analytics_events a SET created_at = a.created_at + target.shift
    FROM target WHERE a.properties ->> 'orderId' = target.id
)
UPDATE orders o
SET created_at = o.created_at + target.shift, updated_at = o.updated_at + target.shift
FROM target WHERE o.id = target.id
"""
SET_TIMES = """
UPDATE analytics_events a SET created_at = t.at
FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS t(id, at)
WHERE a.id = t.id
"""
PAYMENT_EVENTS = """
SELECT count(*) FROM payment_events pe JOIN payments p ON p.id = pe.payment_id
WHERE p.order_id = ANY(CAST(:ids AS text[]))
"""


class OrderSeeder:
    """Orders through the real checkout and workflow, then moved into the past."""

    def __init__(self, seeder: Seeder, *, concurrency: int = ORDER_CONCURRENCY) -> None:
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
        async with self.sessions() as session:
            existing = (
                await session.exec(
                    select(func.count()).select_from(Order).where(col(Order.user_id).in_(user_ids))
                )
            ).one()
        wanted = count - existing
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
        in_process = not await self._workers_present(client)
        if in_process:
            self.seeder.console.print(
                "no worker serves the order queues: running workers in this process"
            )
        async with self._workers(client, in_process):
            placed = await self._place_all(client, plans)
        await self._payments_quiet([p.order_id for p in placed])
        await self._backdate(placed, times, browsing, user_ids, pool, days)
        return OrdersSeeded(
            added=len(placed),
            by_status=dict(Counter(p.status for p in placed)),
            failures=dict(Counter(p.failure_code or p.status for p in placed if p.failure_code)),
            in_process_workers=in_process,
        )

    # --- planning ---------------------------------------------------------------------

    async def _pool(self, rng: random.Random) -> list[PoolProduct]:
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(Product.id, Product.category_id, Product.price)
                    .where(
                        col(Product.sku).like("SW-%"),
                        col(Product.active).is_(True),
                        col(Product.deleted_at).is_(None),
                    )
                    .order_by(col(Product.sku))
                    .limit(5000)
                )
            ).all()
        if not rows:
            raise DependencyUnavailable("there are no seeded products to order: seed --products")
        chosen = rng.sample(list(rows), min(ORDER_PRODUCTS, len(rows)))
        return [PoolProduct(r[0], r[1], r[2]) for r in chosen]

    @staticmethod
    def _plan(
        rng: random.Random, user_ids: list[str], pool: list[PoolProduct], declined_share: float
    ) -> PlannedOrder:
        user_id = rng.choice(user_ids)
        size = min(len(pool), rng.choices([1, 2, 3, 4], weights=[55, 28, 12, 5])[0])
        products = rng.sample(pool, size)
        lines = [(p, rng.choices([1, 2, 3], weights=[80, 15, 5])[0]) for p in products]
        token = DECLINED_CARD if rng.random() < declined_share else CARD
        return PlannedOrder(user_id, lines, token, rng.getrandbits(64))

    async def _stock(self, plans: list[PlannedOrder]) -> None:
        """Enough stock for every planned line, and a margin above the low-stock line."""
        demand: Counter[str] = Counter()
        for plan in plans:
            for product, quantity in plan.lines:
                demand[product.id] += quantity
        async with transaction(self.sessions) as session:
            available = await StockRepository(session).available(sorted(demand))
            inventory = InventoryService(session)
            for product_id in sorted(demand):
                missing = demand[product_id] + 25 - available[product_id]
                if missing > 0:
                    await inventory.adjust(
                        product_id, missing, "seed: stock for orders", kind=MovementKind.RECEIPT
                    )

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
    async def _workers_present(client: Client) -> bool:
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
    async def _workers(self, client: Client, in_process: bool) -> AsyncIterator[None]:
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
        with self.seeder._progress() as progress:
            task = progress.add_task("orders", total=len(plans))

            async def customer(sequence: list[PlannedOrder]) -> None:
                for plan in sequence:
                    async with gate:
                        placed.append(await self._place(client, plan))
                    progress.advance(task)

            await asyncio.gather(*(customer(seq) for seq in by_user.values()))
        return placed

    async def _place(self, client: Client, plan: PlannedOrder) -> PlacedOrder:
        async def connected() -> Client:
            return client

        for _ in range(3):
            recorder = _CollectingRecorder(self.settings.analytics_enabled)
            async with transaction(self.sessions) as session:
                order, start = await self._checkout(session, plan, recorder)
            if start is None:
                # An order of an earlier, interrupted run still holds this cart.
                await self._settled(client, order.id)
                continue
            if not await workflow_starts.start(connected, self.sessions, start, wait_seconds=10):
                raise DependencyUnavailable(f"could not start the workflow of {order.id}")
            adds = [r.id for r in recorder.rows if r.event == "add_to_cart"]
            result = PlacedOrder(plan, order.id, adds)
            await self._settled(client, order.id)
            async with self.sessions() as session:
                row = await session.get(Order, order.id)
                assert row is not None
                result.status, result.failure_code = str(row.status), row.failure_code
            return result
        raise DependencyUnavailable(f"the cart of {plan.user_id} stays held by a live order")

    async def _checkout(
        self, session: AsyncSession, plan: PlannedOrder, recorder: AnalyticsRecorder
    ) -> tuple[Order, WorkflowStart | None]:
        from services.order_repository import OrderRepository

        carts = CartService(session, self.settings, recorder)
        owned = await carts.find_or_create(plan.user_id, None)
        live = await OrderRepository(session).live_for_cart(owned.cart.id)
        if live is not None:
            return live, None
        await carts.carts.clear(owned.cart.id)  # what a declined order left behind
        for product, quantity in plan.lines:
            await carts.add(owned, product.id, quantity)
        user = await session.get(User, plan.user_id)
        assert user is not None
        address = (
            await session.exec(
                select(Address.id).where(
                    Address.user_id == plan.user_id, col(Address.is_default_shipping).is_(True)
                )
            )
        ).first()
        body: dict[str, Any] = {
            "cartId": owned.cart.id,
            "paymentMethod": PaymentMethodIn(type="card", token=plan.token),
        }
        body |= {"shippingAddressId": address} if address else {"shippingAddress": FALLBACK_ADDRESS}
        return await Checkout(session, self.settings).place(user, OrderCreate.model_validate(body))

    @staticmethod
    async def _settled(client: Client, order_id: str) -> None:
        from workflows.orders import workflow_id

        handle = client.get_workflow_handle(workflow_id(order_id))
        try:
            await asyncio.wait_for(handle.result(), ORDER_WAIT_SECONDS)
        except TimeoutError:
            raise DependencyUnavailable(
                f"order {order_id} did not settle within {ORDER_WAIT_SECONDS:.0f} s: "
                "are the workers running?"
            ) from None

    async def _payments_quiet(self, order_ids: list[str]) -> None:
        """The sandbox sends its webhooks just after each call; let the last ones land
        before the payment history is moved into the past."""
        last = -1
        for _ in range(40):
            async with self.sessions() as session:
                conn = await session.connection()
                count = (await conn.execute(text(PAYMENT_EVENTS), {"ids": order_ids})).scalar()
            if count == last:
                return
            last = count or 0
            await asyncio.sleep(0.5)

    # --- into the past ----------------------------------------------------------------

    async def _backdate(
        self,
        placed: list[PlacedOrder],
        times: list[datetime],
        browsing: random.Random,
        user_ids: list[str],
        pool: list[PoolProduct],
        days: int,
    ) -> None:
        """Order ids sort by when they were placed; the dates are handed out in the same
        order, so sorting by id and by ``createdAt`` agree."""
        placed = sorted(placed, key=lambda p: p.order_id)
        analytics = AnalyticsRecorder(self.settings.analytics_enabled)
        for start in range(0, len(placed), 250):
            chunk = list(zip(placed[start : start + 250], times[start : start + 250], strict=True))
            async with transaction(self.sessions) as session:
                conn = await session.connection()
                await conn.execute(
                    text(BACKDATE_ORDERS),
                    {"ids": [p.order_id for p, _ in chunk], "ats": [at for _, at in chunk]},
                )
                ids, ats = [], []
                for order, at in chunk:
                    for event_id, when in await self._funnel(session, analytics, order, at, pool):
                        ids.append(event_id)
                        ats.append(when)
                await conn.execute(text(SET_TIMES), {"ids": ids, "ats": ats})
        # Browsing that ends in no order: anonymous or signed in, some with an add.
        if analytics.enabled:
            async with transaction(self.sessions) as session:
                now = datetime.now(UTC)
                for at in past_times(browsing, len(placed) * 3 // 2, days, now):
                    who = browsing.choice(user_ids) if browsing.random() < 0.6 else None
                    viewed = browsing.sample(pool, min(len(pool), browsing.randint(1, 5)))
                    for product in viewed:
                        await self._at(session, analytics, "product_view", who, _view(product), at)
                        at += timedelta(seconds=browsing.uniform(20, 240))
                    if who is not None and browsing.random() < 0.3:
                        product = browsing.choice(viewed)
                        await self._at(session, analytics, "add_to_cart", who, _add(product, 1), at)

    @staticmethod
    async def _at(
        session: AsyncSession,
        analytics: AnalyticsRecorder,
        event: str,
        user_id: str | None,
        properties: dict[str, Any],
        at: datetime,
    ) -> None:
        row = await analytics.track(session, event, user_id=user_id, properties=properties)
        if row is not None:
            row.created_at = at

    async def _funnel(
        self,
        session: AsyncSession,
        analytics: AnalyticsRecorder,
        order: PlacedOrder,
        at: datetime,
        pool: list[PoolProduct],
    ) -> list[tuple[str, datetime]]:
        """Dates for the order's own adds to cart, and the product views before them
        (several per bought product, and a few of others): the minutes before ``at``."""
        if not analytics.enabled:
            return []
        r = random.Random(order.plan.noise)
        user = order.plan.user_id
        adds: list[tuple[str, datetime]] = []
        cursor = at - timedelta(seconds=r.uniform(40, 300))
        pairs = list(zip(order.plan.lines, order.add_event_ids, strict=False))
        for (product, _), event_id in reversed(pairs):
            adds.append((event_id, cursor))
            for _ in range(r.choice([1, 1, 2, 2, 3, 4])):
                cursor -= timedelta(seconds=r.uniform(15, 400))
                await self._at(session, analytics, "product_view", user, _view(product), cursor)
            cursor -= timedelta(seconds=r.uniform(30, 600))
        for product in r.sample(pool, min(len(pool), r.randint(0, 3))):
            cursor -= timedelta(seconds=r.uniform(15, 300))
            await self._at(session, analytics, "product_view", user, _view(product), cursor)
        return adds


async def seed(
    settings: Settings,
    *,
    products: int,
    users: int,
    reviews: int | None,
    seed: int,
    console: Console,
    orders: int = 0,
) -> SeedReport:
    engine = create_engine(settings)
    try:
        seeder = Seeder(create_session_factory(engine), settings, console)
        rng = random.Random(seed)
        leaves = await seeder.categories()
        products_added = await seeder.products(rng, products, leaves)
        users_added, user_ids = await seeder.users(rng, users)
        review_count = reviews if reviews is not None else min(products // 2, 5000)
        reviews_added = await seeder.reviews(rng, user_ids, review_count)
        staff_email, staff_password = await seeder.staff()
        # Last, so the draws above stay the same with or without orders.
        orders_seeded = await OrderSeeder(seeder).run(rng, user_ids, orders)
    finally:
        await engine.dispose()
    return SeedReport(
        categories=sum(1 + len(children) for _, children in TAXONOMY),
        products_added=products_added,
        users_added=users_added,
        reviews_added=reviews_added,
        staff_email=staff_email,
        staff_password=staff_password,
        orders=orders_seeded,
    )
