"""Automatic discounts: what one takes off a price (``reduction``, coupons' too), and
their rows (``DiscountRepository``) as staff create and end them (``DiscountService``).
Integer minor units, half-even."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound
from core.money import percent_of
from models.catalog import Category, Product
from models.pricing import Discount, DiscountCreate, DiscountKind
from services.catalog.errors import CategoryNotFound, ProductNotFound


def reduction(kind: DiscountKind, percent_bp: int | None, amount: int | None, base: int) -> int:
    """What a discount takes off ``base``: never more than ``base`` itself."""
    if kind is DiscountKind.PERCENTAGE:
        assert percent_bp is not None
        off = percent_of(base, Decimal(percent_bp) / 100)
    else:
        assert amount is not None
        off = amount
    return max(0, min(base, off))


class DiscountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def in_force(self, at: datetime) -> list[Discount]:
        result = await self.session.exec(
            select(Discount).where(
                col(Discount.active).is_(True),
                col(Discount.starts_at) <= at,
                or_(col(Discount.ends_at).is_(None), col(Discount.ends_at) > at),
            )
        )
        return list(result.all())

    async def next_change(self, at: datetime) -> datetime | None:
        starts = select(func.min(Discount.starts_at)).where(
            col(Discount.active).is_(True), col(Discount.starts_at) > at
        )
        ends = select(func.min(Discount.ends_at)).where(
            col(Discount.active).is_(True), col(Discount.ends_at) > at
        )
        candidates = [
            (await self.session.exec(starts)).one(),
            (await self.session.exec(ends)).one(),
        ]
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    async def page(self, *, offset: int, limit: int) -> tuple[list[Discount], int]:
        """By start time, and how many there are."""
        result = await self.session.exec(
            select(Discount)
            .order_by(col(Discount.starts_at), col(Discount.id))
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(select(func.count()).select_from(Discount))
        return list(result.all()), int(total.one())

    async def get(self, discount_id: str) -> Discount | None:
        return await self.session.get(Discount, discount_id)

    async def category_parents(self) -> dict[str, str | None]:
        rows = await self.session.exec(select(Category.id, Category.parent_id))
        return {row[0]: row[1] for row in rows.all()}

    async def product_exists(self, product_id: str) -> bool:
        return await self.session.get(Product, product_id) is not None

    async def category_exists(self, category_id: str) -> bool:
        return await self.session.get(Category, category_id) is not None

    async def save(self, discount: Discount) -> Discount:
        """Insert or update ``discount``, flushed now."""
        self.session.add(discount)
        await self.session.flush()
        return discount

    def stage(self, discount: Discount) -> None:
        """Update ``discount`` at the next flush (the request's commit, for ``end``)."""
        self.session.add(discount)


class DiscountService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.discounts = DiscountRepository(session)

    async def page(self, *, page: int, limit: int) -> tuple[list[Discount], int]:
        return await self.discounts.page(offset=(page - 1) * limit, limit=limit)

    async def create(self, data: DiscountCreate) -> Discount:
        if data.product_id is not None and not await self.discounts.product_exists(data.product_id):
            raise ProductNotFound("no such product", field="productId")
        if data.category_id is not None and not await self.discounts.category_exists(
            data.category_id
        ):
            raise CategoryNotFound("no such category", field="categoryId")
        discount = Discount(
            name=data.name,
            kind=data.kind,
            percent_bp=data.percent_bp,
            amount=data.amount,
            product_id=data.product_id,
            category_id=data.category_id,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
        )
        return await self.discounts.save(discount)

    async def end(self, discount_id: str) -> None:
        discount = await self.discounts.get(discount_id)
        if discount is None:
            raise NotFound(f"no discount {discount_id}", code="discount_not_found")
        discount.active = False
        self.discounts.stage(discount)
