"""``shop seed``: realistic, deterministic demo data written through the services.

The same ``--seed`` gives the same catalogue, users and reviews. Running it again adds
nothing that exists (SKUs, slugs and emails are deterministic), so it is safe to repeat.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import col, select

from core.db import SessionFactory, create_engine, create_session_factory, transaction
from core.settings import Settings
from models.catalog import Category, CategoryCreate, Product, ProductCreate, ReviewCreate
from models.users import AddressCreate, Role, UserCreate
from services.addresses import AddressService
from services.analytics import AnalyticsRecorder
from services.catalog.categories import CategoryService
from services.catalog.products import ProductService
from services.catalog.reviews import AlreadyReviewed, NoPurchases, ReviewService
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


@dataclass(frozen=True)
class SeedReport:
    categories: int
    products_added: int
    users_added: int
    reviews_added: int
    staff_email: str
    staff_password: str | None


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


async def seed(
    settings: Settings,
    *,
    products: int,
    users: int,
    reviews: int | None,
    seed: int,
    console: Console,
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
    finally:
        await engine.dispose()
    return SeedReport(
        categories=sum(1 + len(children) for _, children in TAXONOMY),
        products_added=products_added,
        users_added=users_added,
        reviews_added=reviews_added,
        staff_email=staff_email,
        staff_password=staff_password,
    )
