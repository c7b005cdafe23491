"""Automatic discounts and coupon codes (staff), and coupon checks (anyone)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Response, status

from api.deps import DbSession, Limit, Pagination, State
from api.problems import problem_responses
from api.routes.catalog import invalidate_catalog
from api.security import OptionalUser, StaffUser
from core.errors import Conflict, NotFound
from models.base import Page
from models.pricing import (
    Coupon,
    CouponCheck,
    CouponCreate,
    CouponPublic,
    CouponUpdate,
    CouponVerdict,
    Discount,
    DiscountCreate,
    DiscountPublic,
)
from services.catalog.coupons import CouponNotFound, CouponService
from services.catalog.discounts import DiscountService
from services.catalog.errors import CategoryNotFound, ProductNotFound

router = APIRouter(tags=["pricing"])


def _percent(bp: int | None) -> Decimal | None:
    return Decimal(bp) / 100 if bp is not None else None


def _discount(d: Discount) -> DiscountPublic:
    return DiscountPublic(
        id=d.id,
        name=d.name,
        kind=d.kind,
        percent=_percent(d.percent_bp),
        amount=d.amount,
        product_id=d.product_id,
        category_id=d.category_id,
        starts_at=d.starts_at,
        ends_at=d.ends_at,
        active=d.active,
    )


def _coupon(c: Coupon) -> CouponPublic:
    return CouponPublic(
        id=c.id,
        code=c.code,
        kind=c.kind,
        percent=_percent(c.percent_bp),
        amount=c.amount,
        currency=c.currency,
        min_subtotal=c.min_subtotal,
        starts_at=c.starts_at,
        expires_at=c.expires_at,
        usage_limit=c.usage_limit,
        per_user_limit=c.per_user_limit,
        used_count=c.used_count,
        active=c.active,
    )


@router.post(
    "/discounts",
    status_code=status.HTTP_201_CREATED,
    summary="Create an automatic discount (staff)",
    response_model=DiscountPublic,
    responses=problem_responses(ProductNotFound, CategoryNotFound),
)
async def create_discount(
    body: DiscountCreate, caller: StaffUser, session: DbSession, state: State
) -> DiscountPublic:
    """A percentage (`percent`, up to 2 decimals) or fixed (`amount`, minor units)
    reduction on one product (`productId`) or a category and its subcategories
    (`categoryId`), between `startsAt` and `endsAt` (open-ended if absent). Where several
    apply, the customer gets the largest; they do not stack."""
    discount = await DiscountService(session).create(body)
    invalidate_catalog(session, state)
    return _discount(discount)


@router.get(
    "/discounts",
    summary="List discounts (staff)",
    response_model=Page[DiscountPublic],
    responses=problem_responses(),
)
async def list_discounts(
    caller: StaffUser, session: DbSession, page: Pagination = 1, limit: Limit = 20
) -> Page[DiscountPublic]:
    """Every discount, past, present and future, by start time. Paginated like every
    list."""
    rows, total = await DiscountService(session).page(page=page, limit=limit)
    return Page(items=[_discount(d) for d in rows], total=total, page=page, limit=limit)


@router.delete(
    "/discounts/{discount_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a discount (staff)",
    response_class=Response,
    responses=problem_responses((NotFound, "discount_not_found")),
)
async def end_discount(
    discount_id: str, caller: StaffUser, session: DbSession, state: State
) -> Response:
    """The discount stops applying at once; it stays listed as inactive."""
    await DiscountService(session).end(discount_id)
    invalidate_catalog(session, state)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/coupons",
    status_code=status.HTTP_201_CREATED,
    summary="Create a coupon (staff)",
    response_model=CouponPublic,
    responses=problem_responses((Conflict, "coupon_code_taken")),
)
async def create_coupon(body: CouponCreate, caller: StaffUser, session: DbSession) -> CouponPublic:
    """Codes are case-insensitive and unique (409 `coupon_code_taken`). Optional: a
    minimum subtotal, a start and an expiry, a total usage limit and a per-user limit."""
    return _coupon(await CouponService(session).create(body))


@router.get(
    "/coupons",
    summary="List coupons (staff)",
    response_model=Page[CouponPublic],
    responses=problem_responses(),
)
async def list_coupons(
    caller: StaffUser, session: DbSession, page: Pagination = 1, limit: Limit = 20
) -> Page[CouponPublic]:
    """Newest first, with how often each has been used. Paginated like every list."""
    rows, total = await CouponService(session).page(page=page, limit=limit)
    return Page(items=[_coupon(c) for c in rows], total=total, page=page, limit=limit)


@router.get(
    "/coupons/{code}",
    summary="Get a coupon (staff)",
    response_model=CouponPublic,
    responses=problem_responses(CouponNotFound),
)
async def get_coupon(code: str, caller: StaffUser, session: DbSession) -> CouponPublic:
    """By code, in any case."""
    return _coupon(await CouponService(session).get(code))


@router.patch(
    "/coupons/{code}",
    summary="Change a coupon (staff)",
    response_model=CouponPublic,
    responses=problem_responses(CouponNotFound, (Conflict, "usage_limit_below_use")),
)
async def update_coupon(
    code: str, body: CouponUpdate, caller: StaffUser, session: DbSession
) -> CouponPublic:
    """Switch it off (`active: false`), move its expiry or change its limits."""
    return _coupon(await CouponService(session).update(code, body))


@router.post(
    "/coupons/validate",
    summary="Check whether a coupon applies",
    response_model=CouponVerdict,
    responses=problem_responses(),
)
async def validate_coupon(
    body: CouponCheck, caller: OptionalUser, session: DbSession
) -> CouponVerdict:
    """Says what the coupon would take off `subtotal`, or why it does not apply
    (`reason`, a stable code, and `detail`). Signed in, the per-user limit is checked
    too. Nothing is recorded: usage is recorded when an order is placed."""
    return await CouponService(session).check(
        body.code, body.subtotal, body.currency, caller.user.id if caller else None
    )
