"""Effective prices: the automatic discounts in force priced into a ``PriceBook``, and one
process's cache of it for catalogue reads (``PriceBookCache``). Integer minor units,
half-even. Discounts themselves are in ``discounts``, coupons in ``coupons``.

Several discounts may cover a product (its own, its category's, an ancestor
category's): the customer gets the single largest reduction; discounts do not stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.pricing import Discount, DiscountKind
from services.catalog.discounts import DiscountRepository, reduction
from services.catalog.rows import ProductFields

# A cached price may live this long at most, and never past a discount window's edge.
MAX_PRICE_CACHE_SECONDS = 60


@dataclass(frozen=True)
class DiscountTerms:
    """What pricing needs of a discount: plain values, so a price book outlives the
    session that read it (``PriceBookCache``)."""

    product_id: str | None
    category_id: str | None
    kind: DiscountKind
    percent_bp: int | None
    amount: int | None

    @classmethod
    def of(cls, d: Discount) -> DiscountTerms:
        return cls(d.product_id, d.category_id, DiscountKind(d.kind), d.percent_bp, d.amount)


@dataclass(frozen=True)
class PriceBook:
    """The discounts in force at ``at``, ready to price any number of products."""

    at: datetime
    discounts: list[DiscountTerms]
    parents: dict[str, str | None]
    next_change: datetime | None

    def effective_price(self, product: ProductFields) -> int:
        """Of a product, or of a row with its ``id``, ``category_id`` and ``price``."""
        ancestors: set[str] = set()
        category = product.category_id
        while category is not None and category not in ancestors:
            ancestors.add(category)
            category = self.parents.get(category)
        best = 0
        for d in self.discounts:
            if d.product_id == product.id or (
                d.category_id is not None and d.category_id in ancestors
            ):
                best = max(best, reduction(d.kind, d.percent_bp, d.amount, product.price))
        return product.price - best

    def cache_seconds(self) -> int:
        """How long prices computed now stay right: 0 (do not cache) when a discount
        window opens or closes within the second."""
        if self.next_change is None:
            return MAX_PRICE_CACHE_SECONDS
        until = (self.next_change - self.at).total_seconds()
        return min(MAX_PRICE_CACHE_SECONDS, int(until))


async def price_book(session: AsyncSession, at: datetime | None = None) -> PriceBook:
    at = at or utcnow()
    repo = DiscountRepository(session)
    discounts = [DiscountTerms.of(d) for d in await repo.in_force(at)]
    parents: dict[str, str | None] = {}
    if any(d.category_id for d in discounts):
        parents = await repo.category_parents()
    return PriceBook(
        at=at, discounts=discounts, parents=parents, next_change=await repo.next_change(at)
    )


# How long one process reuses a price book for catalogue reads (see PriceBookCache): as
# long as a cached page, priced with it, may live under the same version. At a second,
# re-reading it was 3% of an API process's samples under the product-detail load.
PRICE_BOOK_SECONDS = float(MAX_PRICE_CACHE_SECONDS)


class PriceBookCache:
    """One process's price book for catalogue reads (listing and detail), so a page does
    not cost the three discount queries each time.

    A book is reused only under the catalogue version it was read under (the Redis
    ``catalog:version`` that every discount, product and category write bumps once it
    has committed), for at most ``seconds``, and never past the next discount window's
    edge. So after a discount write returns, no process prices with the old discounts:
    its next read sees a new version and reads the book again. The version is read
    before the book, so a book read while a write was committing is filed under the old
    version, which nobody asks for again. Without a version (Redis unavailable) the book
    is read every time. Checkout's quote and carts read it fresh (``price_book``).

    One request of the process reads a book at a time: the others that found it out of
    date wait for that read and take its book, rather than all reading it at once (under
    32 clients, every request in flight when the second ran out read the book again).
    """

    def __init__(
        self,
        seconds: float = PRICE_BOOK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        read: Callable[[AsyncSession, datetime], Awaitable[PriceBook]] | None = None,
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self.now = now
        self.read = read or price_book
        self._entry: tuple[str, float, PriceBook] | None = None
        self._reading = asyncio.Lock()

    def _reusable(self, version: str | None, at: datetime) -> PriceBook | None:
        entry = self._entry
        if entry is None or version is None:
            return None
        cached_version, expires, book = entry
        if (
            cached_version == version
            and self.clock() < expires
            and (book.next_change is None or at < book.next_change)
        ):
            return replace(book, at=at)
        return None

    def held(self, version: str | None) -> PriceBook | None:
        """The book ``get`` would give now without reading, if there is one."""
        return self._reusable(version, self.now())

    async def get(self, session: AsyncSession, version: str | None) -> PriceBook:
        at = self.now()
        book = self._reusable(version, at)
        if book is not None:
            return book
        if version is None:
            return await self.read(session, at)  # nothing to share it under
        async with self._reading:
            # Another request may have read it while this one waited.
            book = self._reusable(version, at)
            if book is not None:
                return book
            read_at = self.clock()
            book = await self.read(session, at)
            self._entry = (version, read_at + self.seconds, book)
            return book
