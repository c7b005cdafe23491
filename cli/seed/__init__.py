"""``shop seed``: realistic, deterministic demo data written through the services.

The same ``--seed`` gives the same catalogue, customers and reviews. Every part tops up to
its target counting only what the seed created (``services.seeding`` says how it knows),
and never touches anything else, so running it again adds nothing that exists: products
(``vocabulary``, ``catalogue``), customers and the staff account (``customers``), reviews
by seeded customers on seeded products (``catalogue``), and with ``--orders N`` orders
through the real checkout (``orders``), then moved into the past with their analytics
(``backdating``), then carried through shipping, delivery and some returns by the real
workflows (``after_sale``, its shares in ``after_sale_plan``). Each progress bar counts
what was added, as the summary does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rich.console import Console

from cli.seed.after_sale import AfterSaleSeeded, AfterSaleSeeder
from cli.seed.catalogue import CatalogueSeeder
from cli.seed.customers import CustomerSeeder
from cli.seed.orders import OrderSeeder, OrdersSeeded
from cli.seed.vocabulary import TAXONOMY
from core.db import create_engine, create_session_factory
from core.settings import Settings

__all__ = [
    "AfterSaleSeeded",
    "AfterSaleSeeder",
    "OrderSeeder",
    "OrdersSeeded",
    "SeedReport",
    "Seeder",
    "seed",
]


class Seeder(CatalogueSeeder, CustomerSeeder):
    """The catalogue and the customers (orders: ``OrderSeeder``)."""


@dataclass(frozen=True)
class SeedReport:
    categories: int
    products_added: int
    users_added: int
    reviews_added: int
    staff_email: str
    staff_password: str | None
    orders: OrdersSeeded = field(default_factory=OrdersSeeded)
    after_sale: AfterSaleSeeded = field(default_factory=AfterSaleSeeded)


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
    def part(name: str) -> random.Random:
        # One generator per part, so what one part adds does not change another's draws.
        return random.Random(f"{seed}:{name}")

    engine = create_engine(settings)
    try:
        seeder = Seeder(create_session_factory(engine), settings, console)
        leaves = await seeder.categories()
        products_added = await seeder.products(part("products"), products, leaves)
        users_added, user_ids = await seeder.users(part("users"), users)
        review_count = reviews if reviews is not None else min(products // 2, 5000)
        reviews_added = await seeder.reviews(part("reviews"), user_ids, review_count)
        staff_email, staff_password = await seeder.staff()
        await seeder.search_index()
        orders_seeded = await OrderSeeder(seeder).run(part("orders"), user_ids, orders)
        after_sale = AfterSaleSeeded()
        if orders > 0:
            after_sale = await AfterSaleSeeder(seeder.sessions, settings, console).run(
                seed, user_ids, staff_email
            )
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
        after_sale=after_sale,
    )
