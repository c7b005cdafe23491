"""Coupons: staff create and change them, a cart checks one (``check``), checkout redeems
it for an order under the coupon's lock and a compensation releases it. Integer minor
units, half-even (``reduction``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.errors import Conflict, NotFound, ValidationFailed
from models.base import utcnow
from models.pricing import (
    Coupon,
    CouponCreate,
    CouponRedemption,
    CouponUpdate,
    CouponVerdict,
    DiscountKind,
)
from services.catalog.discounts import reduction


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

    async def page(self, *, offset: int, limit: int) -> tuple[list[Coupon], int]:
        """Newest first, and how many there are."""
        result = await self.session.exec(
            select(Coupon)
            .order_by(col(Coupon.created_at).desc(), col(Coupon.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(select(func.count()).select_from(Coupon))
        return list(result.all()), int(total.one())

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

    async def page(self, *, page: int, limit: int) -> tuple[list[Coupon], int]:
        return await self.coupons.page(offset=(page - 1) * limit, limit=limit)

    async def update(self, code: str, data: CouponUpdate) -> Coupon:
        coupon = await self.coupons.by_code(code, lock=True)
        if coupon is None:
            raise CouponNotFound(f"no coupon {normalize_code(code)}")
        changes = data.model_dump(exclude_unset=True)
        for required in ("active", "min_subtotal"):
            if required in changes and changes[required] is None:
                raise ValidationFailed(f"{required} cannot be null", field=required)
        expires_at = changes.get("expires_at")
        if expires_at is not None and coupon.starts_at and expires_at <= coupon.starts_at:
            raise ValidationFailed("`expiresAt` must be after `startsAt`", field="expiresAt")
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
