"""The seeded catalogue: categories, products and reviews, written through the services.

Products are numbered (SKU ``SW-0000001``…) and each is drawn from its own generator,
seeded from the run's and its number, so a product is the same whether the first run or
a later top-up added it, its opening stock too (received through ``StockService`` in
the transaction that adds it: most in stock, some low, a few out). Reviews are written
by seeded customers on seeded products only, one per (customer, product), up to the
target counting the seeded reviews there are.
"""

from __future__ import annotations

import random

from cli.seed.part import SeedPart
from cli.seed.vocabulary import (
    ADJECTIVES,
    COLOURS,
    FEATURES,
    MATERIALS,
    NOUNS,
    REVIEW_TITLES,
    TAXONOMY,
)
from core.db import transaction
from models.catalog import CategoryCreate, ProductCreate, ReviewCreate
from services.catalog.categories import CategoryService
from services.catalog.indexing import SearchIndexing
from services.catalog.products import ProductService
from services.catalog.reviews import AlreadyReviewed, NoPurchases, ReviewService
from services.inventory import StockService
from services.seeding import SeedRecords, seed_sku

BATCH = 2000  # products per bulk insert
OPENING_STOCK_REASON = "seed: opening stock"
REVIEW_BATCH = 200  # reviews per transaction


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
    sku = seed_sku(n)
    return ProductCreate(
        sku=sku,
        name=name,
        description=description,
        category_id=category_id,
        price=price,
        currency="USD",
        compare_at_price=compare,
        images=[f"https://images.shopweave.example/products/{sku}/1.jpg"],
        attributes={"colour": colour, "material": name.split()[1]},
        low_stock_threshold=rng.choice([5, 10, 20]),
        auto_reorder=rng.random() < 0.3,
        reorder_quantity=rng.choice([25, 50, 100]),
    )


# Opening stock: most products in stock, some low (below their threshold), a few out.
OUT_OF_STOCK_SHARE = 0.05
LOW_STOCK_SHARE = 0.10


def _opening_stock(rng: random.Random, threshold: int) -> int:
    """The stock a seeded product opens with, drawn from its own generator after the
    product itself (so the product is the same as before stock was seeded)."""
    draw = rng.random()
    if draw < OUT_OF_STOCK_SHARE:
        return 0
    if draw < OUT_OF_STOCK_SHARE + LOW_STOCK_SHARE:
        return rng.randint(1, max(1, threshold - 1))
    return rng.randint(max(1, threshold), max(1, threshold) * 20)


def _category(name: str, parent_id: str | None) -> CategoryCreate:
    return CategoryCreate(name=name, slug=name.lower().replace(" ", "-"), parent_id=parent_id)


class CatalogueSeeder(SeedPart):
    async def categories(self) -> list[tuple[str, str]]:
        """(leaf name, id) of every leaf category, created if missing."""
        leaves: list[tuple[str, str]] = []
        async with transaction(self.sessions) as session:
            service = CategoryService(session)
            for parent, children in TAXONOMY:
                parent_row = await service.find_or_create(_category(parent, None))
                for child in children:
                    row = await service.find_or_create(_category(child, parent_row.id))
                    leaves.append((child, row.id))
        return leaves

    async def products(
        self,
        rng: random.Random,
        count: int,
        leaves: list[tuple[str, str]],
        *,
        first_number: int = 1,
    ) -> int:
        """The ``count`` products numbered from ``first_number`` (SKU ``SW-0000001``…):
        those missing are added. Returns how many were."""
        base = rng.getrandbits(64)
        if count <= 0:
            return 0
        async with transaction(self.sessions) as session:
            missing = await SeedRecords(session).missing_products(
                first_number, first_number + count - 1
            )
        with self.tally("products", len(missing)) as tally:
            for start in range(0, len(missing), BATCH):
                items = []
                opening: dict[str, int] = {}
                for n in missing[start : start + BATCH]:
                    own = random.Random(f"{base}:{n}")
                    item = _product(own, n, *own.choice(leaves))
                    items.append(item)
                    opening[item.sku] = _opening_stock(own, item.low_stock_threshold)
                async with transaction(self.sessions) as session:
                    added = await ProductService(session).create_many(items)
                    # Only the products this batch added: one another run added meanwhile
                    # got its stock there.
                    await StockService(session).receive_many(
                        {added[sku]: opening[sku] for sku in added}, OPENING_STOCK_REASON
                    )
                    tally.add(len(added))
        if tally.added:
            async with transaction(self.sessions) as session:
                await ProductService(session).after_bulk_load()
        return tally.added

    async def search_index(self) -> None:
        """The search index rebuilt from what is now in the database (the bulk loads
        above publish no ``product.changed`` per product or review)."""
        indexing = SearchIndexing.from_settings(self.settings)
        if indexing is not None:
            indexed = await indexing.rebuild(self.sessions)
            self.console.print(f"search index rebuilt: {indexed} products")

    async def reviews(self, rng: random.Random, user_ids: list[str], count: int) -> int:
        """Reviews by the customers ``user_ids`` on the first ``count`` seeded products,
        until there are ``count`` seeded reviews (or no (customer, product) is left).
        Returns how many were added."""
        if not user_ids or count <= 0:
            return 0
        async with transaction(self.sessions) as session:
            records = SeedRecords(session)
            reviewed = await records.reviews()
            product_ids = [p.id for p in await records.products(count)]
        users, products = set(user_ids), set(product_ids)
        free = len(users) * len(products)
        free -= sum(1 for u, p in reviewed if u in users and p in products)
        wanted = max(0, min(count - len(reviewed), free))
        number = len(reviewed)
        with self.tally("reviews", wanted) as tally:
            while tally.added < wanted and free > 0:
                async with transaction(self.sessions) as session:
                    service = ReviewService(session, NoPurchases(), index_events=False)
                    batch_end = min(wanted, tally.added + REVIEW_BATCH)
                    while tally.added < batch_end and free > 0:
                        pair = (rng.choice(user_ids), rng.choice(product_ids))
                        if pair in reviewed:
                            continue
                        reviewed.add(pair)
                        free -= 1
                        rating = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]
                        number += 1
                        data = ReviewCreate(
                            rating=rating,
                            title=rng.choice(REVIEW_TITLES[rating]),
                            body=f"{rng.choice(FEATURES).capitalize()}. Review #{number}.",
                        )
                        try:
                            await service.create(pair[1], pair[0], data)
                        except AlreadyReviewed:  # written meanwhile by another run
                            continue
                        tally.add()
        return tally.added
