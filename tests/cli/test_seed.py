"""``shop seed``: deterministic, repeatable, through the services."""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select
from temporalio.client import WorkflowExecutionStatus

from cli.seed import OrderSeeder, Seeder, seed
from cli.seed.backdating import past_times
from cli.seed.catalogue import _opening_stock, _product
from cli.seed_command import staff_account_line
from core.db import SessionFactory, create_session_factory, transaction
from core.settings import Settings
from models.analytics import AnalyticsEvent
from models.catalog import Product, ProductCreate, Review, ReviewCreate
from models.inventory import MovementKind, StockMovement
from models.orders import Order, OrderEvent
from models.payments import Payment, PaymentEvent
from models.users import Address, Role, User, UserStatus
from services.catalog.products import ProductService
from services.catalog.reviews import NoPurchases, ReviewService
from services.inventory import StockService
from services.seeding import SEED_SKU_PATTERN, SeedRecords
from temporal.clients.orders import workflow_id
from tests.live import LiveStack


def test_the_same_seed_makes_the_same_products() -> None:
    leaves = [("Kitchen", "cat_x")]
    first = [_product(random.Random(5), n, *leaves[0]) for n in range(1, 4)]
    second = [_product(random.Random(5), n, *leaves[0]) for n in range(1, 4)]
    assert first == second
    other = [_product(random.Random(6), n, *leaves[0]) for n in range(1, 4)]
    assert other != first
    for product in first:
        assert product.price >= 0
        assert product.sku.startswith("SW-")


async def test_seeding_twice_adds_nothing_the_second_time(
    settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    quiet = Console(quiet=True)
    report = await seed(settings, products=60, users=3, reviews=20, seed=9, console=quiet)
    assert report.products_added == 60
    assert report.users_added == 3
    assert 0 < report.reviews_added <= 20
    assert report.staff_password is not None
    again = await seed(settings, products=60, users=3, reviews=20, seed=9, console=quiet)
    assert (again.products_added, again.users_added, again.reviews_added) == (0, 0, 0)
    assert again.staff_password is None

    sessions = create_session_factory(engine)
    async with sessions() as session:
        seeded = (
            await session.exec(
                select(func.count()).select_from(Product).where(col(Product.sku).like("SW-%"))
            )
        ).one()
        assert seeded == 60
        customers = (
            await session.exec(select(User).where(col(User.email).like("customer%@example.com")))
        ).all()
        assert len(customers) == 3
        addresses = (
            await session.exec(
                select(func.count())
                .select_from(Address)
                .where(col(Address.user_id).in_([u.id for u in customers]))
            )
        ).one()
        assert addresses == 3
        reviews = (await session.exec(select(func.count()).select_from(Review))).one()
        assert reviews >= report.reviews_added

    # Seeded products went through the service: searchable, priced, in a category.
    found = await client.get("/api/products", params={"category": "kitchen", "limit": 100})
    assert found.status_code == 200
    login = await client.post(
        "/api/auth/login", json={"email": report.staff_email, "password": report.staff_password}
    )
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "staff"


@pytest.mark.parametrize("first_number", [1, 1001])
async def test_products_can_be_added_in_ranges(
    settings: Settings, db_sessions: SessionFactory, first_number: int
) -> None:
    seeder = Seeder(db_sessions, settings, Console(quiet=True))
    leaves = await seeder.categories()
    added = await seeder.products(random.Random(1), 5, leaves, first_number=first_number + 50_000)
    assert added == 5


def test_order_times_are_past_ascending_and_spread() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    times = past_times(random.Random(4), 400, 90, now)
    assert times == sorted(times)
    assert all(now - timedelta(days=91) <= t <= now - timedelta(minutes=10) for t in times)
    assert len({t.date() for t in times}) > 60  # most days have orders
    evening = sum(1 for t in times if 17 <= t.hour <= 21)
    night = sum(1 for t in times if 1 <= t.hour <= 5)
    assert evening > 3 * night


async def test_seeded_orders_run_the_real_workflow_and_are_moved_into_the_past(
    live: LiveStack, engine: AsyncEngine
) -> None:
    quiet = Console(quiet=True)
    sessions = create_session_factory(engine)
    seeder = Seeder(sessions, live.settings, quiet)
    rng = random.Random(21)
    leaves = await seeder.categories()
    await seeder.products(rng, 30, leaves, first_number=90_001)
    _, user_ids = await seeder.users(rng, 3)

    result = await OrderSeeder(seeder).run(rng, user_ids, 6, declined_share=0.35)
    assert result.added == 6
    assert not result.in_process_workers  # the live stack's workers took them
    assert set(result.by_status) <= {"fulfillment_queued", "failed"}
    assert result.by_status.get("fulfillment_queued", 0) >= 1
    assert result.by_status.get("failed", 0) >= 1
    assert result.failures == {"payment_declined": result.by_status["failed"]}

    now = datetime.now(UTC)
    async with sessions() as session:
        orders = (
            await session.exec(
                select(Order).where(col(Order.user_id).in_(user_ids)).order_by(col(Order.id))
            )
        ).all()
        assert len(orders) == 6
        created = [o.created_at for o in orders]
        assert created == sorted(created)  # ids and dates sort alike
        for order in orders:
            assert now - timedelta(days=91) <= order.created_at <= now - timedelta(minutes=10)
            # Everything that belongs to the order moved with it, intervals kept.
            window = (order.created_at, order.created_at + timedelta(minutes=5))
            assert window[0] <= order.updated_at <= window[1]
            timeline = (
                await session.exec(
                    select(OrderEvent.created_at).where(OrderEvent.order_id == order.id)
                )
            ).all()
            assert timeline
            assert all(window[0] <= t <= window[1] for t in timeline)
            assert min(timeline) - order.created_at < timedelta(seconds=1)
            payment = (
                await session.exec(select(Payment).where(Payment.order_id == order.id))
            ).one()
            assert window[0] <= payment.created_at <= window[1]
            history = (
                await session.exec(
                    select(PaymentEvent.created_at).where(PaymentEvent.payment_id == payment.id)
                )
            ).all()
            assert history
            assert all(window[0] <= t <= window[1] for t in history)
            tracked = (
                await session.exec(
                    select(AnalyticsEvent.event, AnalyticsEvent.created_at).where(
                        col(AnalyticsEvent.properties)["orderId"].astext == order.id
                    )
                )
            ).all()
            events = {event for event, _ in tracked}
            assert {"checkout_start", "payment_start"} <= events
            assert ("order_complete" in events) == (order.status == "fulfillment_queued")
            assert all(window[0] <= t <= window[1] for _, t in tracked)
            # The shopper looked at and added the products in the minutes before.
            before = (
                await session.exec(
                    select(AnalyticsEvent.event, func.count())
                    .where(
                        AnalyticsEvent.user_id == order.user_id,
                        col(AnalyticsEvent.created_at).between(
                            order.created_at - timedelta(hours=3), order.created_at
                        ),
                    )
                    .group_by(col(AnalyticsEvent.event))
                )
            ).all()
            counts = dict(before)
            assert counts.get("product_view", 0) >= counts.get("add_to_cart", 0) >= 1

        # The funnel narrows: views, then adds, then checkouts, then completed orders.
        funnel = dict(
            (
                await session.exec(
                    select(AnalyticsEvent.event, func.count())
                    .where(col(AnalyticsEvent.user_id).in_(user_ids))
                    .group_by(col(AnalyticsEvent.event))
                )
            ).all()
        )
        assert funnel["product_view"] > funnel["add_to_cart"] > funnel["checkout_start"]
        assert funnel["checkout_start"] == 6
        assert funnel.get("order_complete", 0) == result.by_status["fulfillment_queued"]

    # Each order was run by OrderWorkflow on the workers, to the end.
    for order in orders:
        handle = live.client.get_workflow_handle(workflow_id(order.id))
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.COMPLETED

    # Seeding again with the same target adds no orders.
    again = await OrderSeeder(seeder).run(random.Random(21), user_ids, 6)
    assert again.added == 0


def _bar(output: str, label: str) -> tuple[int, int]:
    """Completed and total of the progress bar named ``label`` (its last rendering)."""
    found = re.findall(rf"^{label}\s.*?(\d+)/(\d+)", output, re.MULTILINE)
    assert found, output
    done, total = found[-1]
    return int(done), int(total)


async def _seeded_ratings(sessions: SessionFactory) -> dict[str, tuple[int, int]]:
    async with sessions() as session:
        rows = await session.exec(
            select(Product.id, Product.rating_count, Product.rating_sum).where(
                col(Product.sku).regexp_match(SEED_SKU_PATTERN)
            )
        )
        return {pid: (count, total) for pid, count, total in rows.all()}


async def test_reseeding_tops_up_reviews_and_leaves_hand_made_data_alone(
    settings: Settings, engine: AsyncEngine
) -> None:
    quiet = Console(quiet=True)
    sessions = create_session_factory(engine)
    await seed(settings, products=60, users=3, reviews=20, seed=9, console=quiet)

    # A shopper's own product (its SKU sorts before the seed's) and their own review of
    # a seeded product, made by hand between two runs.
    tag = uuid4().hex[:8]
    async with transaction(sessions) as session:
        hand_made = await ProductService(session).create(
            ProductCreate(sku=f"A-HAND-{tag}", name=f"Hand-thrown mug {tag}", price=2400)
        )
        maker = User(
            email=f"maker-{tag}@hand.example",
            name="Hand Maker",
            password_hash="unusable",
            role=Role.CUSTOMER,
            status=UserStatus.ACTIVE,
        )
        session.add(maker)
        await session.flush()
        first_seeded = (
            await session.exec(select(Product).where(Product.sku == "SW-0000001"))
        ).one()
        own_review = await ReviewService(session, NoPurchases()).create(
            first_seeded.id, maker.id, ReviewCreate(rating=2, title="Mine", body="By hand.")
        )

    async def snapshot() -> tuple[Product, Review, int, set[tuple[str, str]]]:
        async with sessions() as session:
            product = (await session.exec(select(Product).where(Product.id == hand_made.id))).one()
            review = (await session.exec(select(Review).where(Review.id == own_review.id))).one()
            total = (await session.exec(select(func.count()).select_from(Review))).one()
            return product, review, total, await SeedRecords(session).reviews()

    product_before, review_before, total_before, seeded_before = await snapshot()
    ratings_before = await _seeded_ratings(sessions)

    # The same targets again: nothing is added, no rating moves.
    again = await seed(settings, products=60, users=3, reviews=20, seed=9, console=quiet)
    assert (again.products_added, again.users_added, again.reviews_added) == (0, 0, 0)
    product_after, review_after, total_after, seeded_after = await snapshot()
    assert total_after == total_before
    assert seeded_after == seeded_before
    assert await _seeded_ratings(sessions) == ratings_before

    # A higher review target tops up to it exactly, with seeded customers on seeded
    # products only; the bar counts what the summary reports.
    target = len(seeded_before) + 10
    output = io.StringIO()
    more = await seed(
        settings,
        products=60,
        users=3,
        reviews=target,
        seed=9,
        console=Console(file=output, width=120),
    )
    assert more.reviews_added == 10
    assert _bar(output.getvalue(), "reviews") == (10, 10)
    product_after, review_after, total_after, seeded_after = await snapshot()
    assert len(seeded_after) == target
    assert seeded_after > seeded_before
    assert total_after == total_before + 10
    assert product_after == product_before
    assert product_after.rating_count == 0
    assert review_after == review_before
    async with sessions() as session:
        on_hand_made = (
            await session.exec(
                select(func.count()).select_from(Review).where(Review.product_id == hand_made.id)
            )
        ).one()
        assert on_hand_made == 0
        by_maker = (
            await session.exec(
                select(func.count()).select_from(Review).where(Review.user_id == maker.id)
            )
        ).one()
        assert by_maker == 1


async def test_products_top_up_the_missing_numbers_only(
    settings: Settings, db_sessions: SessionFactory
) -> None:
    sessions = db_sessions
    seeder = Seeder(sessions, settings, Console(quiet=True))
    leaves = await seeder.categories()
    assert await seeder.products(random.Random(3), 3, leaves, first_number=60_001) == 3
    async with sessions() as session:
        first = (
            await session.exec(select(Product).where(col(Product.sku).like("SW-006000_")))
        ).all()

    output = io.StringIO()
    seeder = Seeder(sessions, settings, Console(file=output, width=120))
    assert await seeder.products(random.Random(3), 5, leaves, first_number=60_001) == 2
    assert _bar(output.getvalue(), "products") == (2, 2)
    async with sessions() as session:
        after = (
            await session.exec(
                select(Product).where(col(Product.sku).like("SW-006000_")).order_by(Product.sku)
            )
        ).all()
    assert [p.sku for p in after] == [f"SW-006000{n}" for n in range(1, 6)]
    assert sorted(first, key=lambda p: p.sku) == list(after[:3])  # untouched
    # Each product is drawn from its own generator: the same whichever run added it.
    base = random.Random(3).getrandbits(64)
    for product in after:
        own = random.Random(f"{base}:{int(product.sku[3:])}")
        expected = _product(own, int(product.sku[3:]), *own.choice(leaves))
        assert (product.name, product.price) == (expected.name, expected.price)


async def test_seeded_products_open_with_stock_most_in_some_low_a_few_out(
    settings: Settings, db_sessions: SessionFactory
) -> None:
    # They had none: only the products the seeded orders took got stock, so a shopper
    # following the README could buy about 9 of 200.
    seeder = Seeder(db_sessions, settings, Console(quiet=True))
    leaves = await seeder.categories()
    assert await seeder.products(random.Random(4), 200, leaves, first_number=70_001) == 200
    async with db_sessions() as session:
        products = (
            await session.exec(select(Product).where(col(Product.sku).like("SW-007%")))
        ).all()
        stock = {p.id: await StockService(session).get(p.id) for p in products}
        ledger = (
            await session.exec(
                select(StockMovement).where(
                    col(StockMovement.product_id).in_([p.id for p in products])
                )
            )
        ).all()
    assert len(products) == 200
    out = [s for s in stock.values() if s.available == 0]
    low = [s for s in stock.values() if 0 < s.available < s.threshold]
    in_stock = [s for s in stock.values() if s.available >= s.threshold]
    assert len(in_stock) >= 150
    assert 5 <= len(low) <= 40
    assert 1 <= len(out) <= 25
    assert all(s.reserved == 0 for s in stock.values())
    # Received through the stock's own path: one receipt on the ledger per product in
    # stock, of what it holds.
    assert {(m.product_id, m.on_hand_delta) for m in ledger} == {
        (s.product_id, s.on_hand) for s in stock.values() if s.on_hand > 0
    }
    assert {(m.kind, m.reason) for m in ledger} == {(MovementKind.RECEIPT, "seed: opening stock")}
    # Drawn from the product's own generator, after the product: the same in every run.
    base = random.Random(4).getrandbits(64)
    for product in products:
        number = int(product.sku[3:])
        own = random.Random(f"{base}:{number}")
        _product(own, number, *own.choice(leaves))
        expected = _opening_stock(own, product.low_stock_threshold)
        assert stock[product.id].on_hand == expected


def test_a_reseed_says_how_to_get_a_staff_login() -> None:
    made = staff_account_line("staff@shopweave.example", "pw-123")
    assert made == "staff account: staff@shopweave.example / pw-123"
    again = staff_account_line("staff@shopweave.example", None)
    assert again.startswith("staff account staff@shopweave.example already existed")
    assert "shop admin create EMAIL --password PW" in again
