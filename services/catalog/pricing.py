"""Effective prices (automatic discounts) and coupons. Integer minor units, half-even.

Several discounts may cover a product (its own, its category's, an ancestor
category's): the customer gets the single largest reduction; discounts do not stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.errors import Conflict, NotFound, ValidationFailed
from core.money import percent_of
from models.base import utcnow
from models.catalog import Category, Product
from models.pricing import (
    Coupon,
    CouponCreate,
    CouponRedemption,
    CouponUpdate,
    CouponVerdict,
    Discount,
    DiscountCreate,
    DiscountKind,
)
from services.catalog.errors import CategoryNotFound, ProductNotFound
from services.catalog.rows import ProductFields

# A cached price may live this long at most, and never past a discount window's edge.
MAX_PRICE_CACHE_SECONDS = 60


def reduction(kind: DiscountKind, percent_bp: int | None, amount: int | None, base: int) -> int:
    """What a discount takes off ``base``: never more than ``base`` itself."""
    if kind is DiscountKind.PERCENTAGE:
        assert percent_bp is not None
        off = percent_of(base, Decimal(percent_bp) / 100)
    else:
        assert amount is not None
        off = amount
    return max(0, min(base, off))


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

    async def all(self) -> list[Discount]:
        result = await self.session.exec(
            select(Discount).order_by(col(Discount.starts_at), col(Discount.id))
        )
        return list(result.all())

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


class DiscountService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.discounts = DiscountRepository(session)

    async def create(self, data: DiscountCreate) -> Discount:
        if data.product_id and not await self.discounts.product_exists(data.product_id):
            raise ProductNotFound("no such product", field="productId")
        if data.category_id and not await self.discounts.category_exists(data.category_id):
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


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    title = "No such coupon"


class CouponNotApplicable(Conflict):
    code = "coupon_not_applicable"
    title = "The coupon does not apply"


def normalize_code(code: str) -> str:
    return code.strip().upper()


class CouponRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_code(self, code: str, *, lock: bool = False) -> Coupon | None:
        query = select(Coupon).where(Coupon.code == normalize_code(code))
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def redemptions_by(self, coupon_id: str, user_id: str) -> int:
        result = await self.session.exec(
            select(func.count())
            .select_from(CouponRedemption)
            .where(CouponRedemption.coupon_id == coupon_id, CouponRedemption.user_id == user_id)
        )
        return int(result.one())

    async def redemption_for_order(self, order_id: str) -> CouponRedemption | None:
        result = await self.session.exec(
            select(CouponRedemption).where(CouponRedemption.order_id == order_id)
        )
        return result.first()

    async def all(self) -> list[Coupon]:
        result = await self.session.exec(
            select(Coupon).order_by(col(Coupon.created_at).desc(), col(Coupon.id).desc())
        )
        return list(result.all())

    async def delete_redemption(self, order_id: str) -> str | None:
        """Remove the order's redemption; the coupon's id if there was one."""
        removed = await self.session.exec(
            delete(CouponRedemption)
            .where(col(CouponRedemption.order_id) == order_id)
            .returning(col(CouponRedemption.coupon_id))
        )
        row = removed.first()
        return row[0] if row is not None else None

    async def save(self, row: Coupon | CouponRedemption) -> None:
        """Insert or update ``row``, flushed now (so a taken code or a second redemption
        for one order is refused here, by its unique index)."""
        self.session.add(row)
        await self.session.flush()

    async def add(self, coupon: Coupon) -> None:
        """Insert a new coupon. Its code taken meanwhile (a create racing this one past
        the service's look-up) is 409 ``coupon_code_taken`` too, not the unique index's
        error (a 500)."""
        try:
            async with self.session.begin_nested():
                await self.save(coupon)
        except IntegrityError as exc:
            raise Conflict(
                f"coupon {coupon.code} exists", code="coupon_code_taken", field="code"
            ) from exc

    async def count_use(self, coupon_id: str, delta: int) -> None:
        await self.session.exec(
            update(Coupon)
            .where(col(Coupon.id) == coupon_id)
            .values(used_count=Coupon.used_count + delta, updated_at=utcnow())
        )


class CouponService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.coupons = CouponRepository(session)

    async def create(self, data: CouponCreate) -> Coupon:
        code = normalize_code(data.code)
        if await self.coupons.by_code(code) is not None:
            raise Conflict(f"coupon {code} exists", code="coupon_code_taken", field="code")
        coupon = Coupon(
            code=code,
            kind=data.kind,
            percent_bp=data.percent_bp,
            amount=data.amount,
            currency=data.currency,
            min_subtotal=data.min_subtotal,
            starts_at=data.starts_at,
            expires_at=data.expires_at,
            usage_limit=data.usage_limit,
            per_user_limit=data.per_user_limit,
        )
        await self.coupons.add(coupon)
        return coupon

    async def get(self, code: str) -> Coupon:
        coupon = await self.coupons.by_code(code)
        if coupon is None:
            raise CouponNotFound(f"no coupon {normalize_code(code)}")
        return coupon

    async def list(self) -> list[Coupon]:
        return await self.coupons.all()

    async def update(self, code: str, data: CouponUpdate) -> Coupon:
        coupon = await self.coupons.by_code(code, lock=True)
        if coupon is None:
            raise CouponNotFound(f"no coupon {normalize_code(code)}")
        changes = data.model_dump(exclude_unset=True)
        for required in ("active", "min_subtotal"):
            if required in changes and changes[required] is None:
                raise ValidationFailed(f"{required} cannot be null", field=required)
        limit = changes.get("usage_limit", coupon.usage_limit)
        if limit is not None and limit < coupon.used_count:
            raise Conflict(
                f"{coupon.code} has been used {coupon.used_count} times already",
                code="usage_limit_below_use",
                field="usageLimit",
            )
        for key, value in changes.items():
            setattr(coupon, key, value)
        coupon.updated_at = utcnow()
        await self.coupons.save(coupon)
        return coupon

    def _verdict(
        self,
        coupon: Coupon | None,
        code: str,
        subtotal: int,
        currency: str,
        user_redemptions: int,
        at: datetime,
    ) -> CouponVerdict:
        def no(reason: str, detail: str) -> CouponVerdict:
            return CouponVerdict(valid=False, code=code, discount=0, reason=reason, detail=detail)

        if coupon is None:
            return no("coupon_not_found", f"there is no coupon {code}")
        if not coupon.active:
            return no("coupon_inactive", f"{code} is no longer offered")
        if coupon.starts_at is not None and at < coupon.starts_at:
            return no(
                "coupon_not_started",
                f"{code} can be used from {coupon.starts_at:%Y-%m-%d %H:%M} UTC",
            )
        if coupon.expires_at is not None and at >= coupon.expires_at:
            return no("coupon_expired", f"{code} expired on {coupon.expires_at:%Y-%m-%d %H:%M} UTC")
        if coupon.kind == DiscountKind.FIXED and coupon.currency != currency.upper():
            return no("coupon_currency_mismatch", f"{code} is for {coupon.currency} orders")
        if subtotal < coupon.min_subtotal:
            return no(
                "coupon_below_minimum",
                f"{code} needs a subtotal of at least {coupon.min_subtotal} "
                f"(minor units); this one is {subtotal}",
            )
        if coupon.usage_limit is not None and coupon.used_count >= coupon.usage_limit:
            return no("coupon_exhausted", f"{code} has been used as often as it may be")
        if coupon.per_user_limit is not None and user_redemptions >= coupon.per_user_limit:
            return no("coupon_user_limit_reached", f"you have already used {code}")
        off = reduction(DiscountKind(coupon.kind), coupon.percent_bp, coupon.amount, subtotal)
        return CouponVerdict(valid=True, code=code, discount=off)

    async def check(
        self, code: str, subtotal: int, currency: str, user_id: str | None
    ) -> CouponVerdict:
        """Whether ``code`` applies to a subtotal, and if not, why. Changes nothing."""
        coupon = await self.coupons.by_code(code)
        used = 0
        if coupon is not None and user_id is not None:
            used = await self.coupons.redemptions_by(coupon.id, user_id)
        return self._verdict(coupon, normalize_code(code), subtotal, currency, used, utcnow())

    async def redeem(
        self,
        code: str,
        *,
        user_id: str,
        order_id: str,
        subtotal: int,
        currency: str,
        priced_at: datetime | None = None,
    ) -> CouponRedemption:
        """Record one use for ``order_id`` (the checkout's create-order step).

        The coupon row is locked, so concurrent checkouts cannot exceed its limits;
        redeeming again for the same order returns the existing redemption. Its window
        (start, expiry) is judged at ``priced_at``, when the order was priced with it (the
        amount authorised carries its discount), not minutes later after 3-D Secure.
        """
        existing = await self.coupons.redemption_for_order(order_id)
        if existing is not None:
            return existing
        coupon = await self.coupons.by_code(code, lock=True)
        used = await self.coupons.redemptions_by(coupon.id, user_id) if coupon else 0
        verdict = self._verdict(
            coupon, normalize_code(code), subtotal, currency, used, priced_at or utcnow()
        )
        if not verdict.valid or coupon is None:
            raise CouponNotApplicable(
                verdict.detail or "the coupon does not apply", reason=verdict.reason
            )
        redemption = CouponRedemption(
            coupon_id=coupon.id, user_id=user_id, order_id=order_id, amount=verdict.discount
        )
        await self.coupons.save(redemption)
        await self.coupons.count_use(coupon.id, +1)
        return redemption

    async def release(self, order_id: str) -> bool:
        """Undo the use recorded for ``order_id`` (a compensation); idempotent."""
        coupon_id = await self.coupons.delete_redemption(order_id)
        if coupon_id is None:
            return False  # never redeemed, or a concurrent release got there first
        await self.coupons.count_use(coupon_id, -1)
        return True
