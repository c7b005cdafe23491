"""An account erased while something for the person is on its way, made deterministic:
the work is held at a point of its own (after it read the account, before its effect),
the erasure runs, the work is let go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import SessionFactory, transaction
from core.settings import Settings
from models.catalog import Product
from models.users import User
from services.analytics import AnalyticsRecorder
from services.carts import CartService, OwnedCart
from services.inventory import StockService
from services.users import UserService
from tests.events.customers import create_customer
from tests.factories import unique_email, unique_slug
from tests.lock_waits import waiting_on_locks

T = TypeVar("T")


class Hold:
    """Where the held work stops (``point``) until the test releases it."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def point(self) -> None:
        self.reached.set()
        await self.release.wait()


async def customer_with_cart(
    sessions: SessionFactory, settings: Settings, prefix: str
) -> tuple[User, Product, OwnedCart]:
    """An active account, its (empty) cart, and a product with five in stock, committed."""
    async with transaction(sessions) as session:
        user = await create_customer(session, email=unique_email(prefix))
        product = Product(
            sku=unique_slug("sku"), name="Mug", slug=unique_slug("mug"), price=900, currency="USD"
        )
        session.add(product)
        await session.flush()
        await StockService(session).adjust(product.id, 5, "test stock")
        carts = CartService(session, settings, AnalyticsRecorder(False))
        return user, product, await carts.find_or_create(user.id, None)


async def delete_account(sessions: SessionFactory, user_id: str) -> None:
    """``DELETE /api/users/{id}``'s erasure, committed: acknowledged when it returns."""
    async with transaction(sessions) as session:
        service = UserService(session, analytics=AnalyticsRecorder(False), password_min_length=15)
        await service.delete(await service.get(user_id))


async def erase_while_held(
    engine: AsyncEngine,
    hold: Hold,
    work: Callable[[], Awaitable[object]],
    erase: Callable[[], Awaitable[T]],
) -> T:
    """Run ``work`` until it reaches ``hold``, then ``erase`` (committing the deletion);
    let the work go once the erasure is seen waiting for it, or has been acknowledged.
    What ``erase`` answered, once both are done."""
    working = asyncio.ensure_future(work())
    await hold.reached.wait()
    erasing = asyncio.ensure_future(erase())
    # Either the erasure is seen waiting for the work, or it has already been acknowledged.
    waiting = asyncio.create_task(
        waiting_on_locks(engine, 1, query_like="%FROM users%FOR NO KEY UPDATE%")
    )
    await asyncio.wait({erasing, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done():
        waiting.result()  # seen waiting, not given up on
    hold.release.set()
    await working
    acknowledged = await erasing
    waiting.cancel()
    return acknowledged
