"""Automatic discounts and coupon codes. Amounts in minor units, percentages in basis
points (1250 = 12.5 %), so nothing is ever a float."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field as PydanticField
from pydantic import StrictBool, StrictInt, field_validator, model_validator
from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, String
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from core.money import MoneyError, price_currency
from models.base import (
    CamelModel,
    IsoDatetime,
    RequestModel,
    SingleLineText,
    created_at_field,
    updated_at_field,
)


class DiscountKind(StrEnum):
    PERCENTAGE = "percentage"
    FIXED = "fixed"


class Discount(SQLModel, table=True):
    __tablename__ = "discounts"
    __table_args__ = (
        CheckConstraint("(product_id IS NULL) <> (category_id IS NULL)", name="one_target"),
        CheckConstraint(
            "(kind = 'percentage' AND percent_bp BETWEEN 1 AND 10000 AND amount IS NULL) OR "
            "(kind = 'fixed' AND amount > 0 AND percent_bp IS NULL)",
            name="kind_value",
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.DISCOUNT), primary_key=True)
    name: str = Field(max_length=200)
    kind: DiscountKind = Field(sa_column=Column(String(16), nullable=False))
    percent_bp: int | None = None
    amount: int | None = None
    product_id: str | None = Field(
        default=None,
        sa_column=Column(String, ForeignKey("products.id", ondelete="CASCADE"), index=True),
    )
    category_id: str | None = Field(
        default=None,
        sa_column=Column(String, ForeignKey("categories.id", ondelete="CASCADE"), index=True),
    )
    starts_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ends_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    active: bool = Field(default=True)
    created_at: datetime = created_at_field()


class Coupon(SQLModel, table=True):
    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint(
            "usage_limit IS NULL OR used_count <= usage_limit", name="within_usage_limit"
        ),
        CheckConstraint("used_count >= 0", name="used_count_not_negative"),
        CheckConstraint(
            "(kind = 'percentage' AND percent_bp BETWEEN 1 AND 10000 AND amount IS NULL) OR "
            "(kind = 'fixed' AND amount > 0 AND percent_bp IS NULL)",
            name="kind_value",
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.COUPON), primary_key=True)
    # Stored upper-case; codes are matched case-insensitively.
    code: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    kind: DiscountKind = Field(sa_column=Column(String(16), nullable=False))
    percent_bp: int | None = None
    amount: int | None = None
    currency: str = Field(max_length=3)
    min_subtotal: int = Field(default=0)
    starts_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    usage_limit: int | None = None
    per_user_limit: int | None = None
    used_count: int = Field(default=0)
    active: bool = Field(default=True)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class CouponRedemption(SQLModel, table=True):
    __tablename__ = "coupon_redemptions"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.REDEMPTION), primary_key=True)
    coupon_id: str = Field(
        sa_column=Column(String, ForeignKey("coupons.id", ondelete="RESTRICT"), nullable=False)
    )
    user_id: str = Field(max_length=40, index=True)
    # One redemption per order: recording usage again for the same order is a no-op.
    order_id: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    amount: int
    created_at: datetime = created_at_field()


# --- wire schemas ---------------------------------------------------------------------


class _Value(RequestModel):
    kind: DiscountKind
    percent: Decimal | None = PydanticField(
        default=None, gt=0, le=100, decimal_places=2, examples=["12.5"]
    )
    amount: StrictInt | None = PydanticField(default=None, gt=0, le=2_147_483_647, examples=[500])

    @model_validator(mode="after")
    def _one_value(self) -> _Value:
        if self.kind is DiscountKind.PERCENTAGE and (self.percent is None or self.amount):
            raise ValueError("a percentage discount takes `percent` (and no `amount`)")
        if self.kind is DiscountKind.FIXED and (self.amount is None or self.percent):
            raise ValueError("a fixed discount takes `amount` in minor units (and no `percent`)")
        return self

    @property
    def percent_bp(self) -> int | None:
        return int(self.percent * 100) if self.percent is not None else None


class DiscountCreate(_Value):
    name: SingleLineText = PydanticField(
        min_length=1, max_length=200, examples=["Summer audio sale"]
    )
    # An empty id names nothing: refused here, not left to the foreign key (a 500).
    product_id: str | None = PydanticField(
        default=None, min_length=1, max_length=40, examples=["prod_01M8…"]
    )
    category_id: str | None = PydanticField(
        default=None, min_length=1, max_length=40, examples=["cat_01M8…"]
    )
    starts_at: IsoDatetime
    ends_at: IsoDatetime | None = None

    @model_validator(mode="after")
    def _target_and_window(self) -> DiscountCreate:
        if (self.product_id is None) == (self.category_id is None):
            raise ValueError("give exactly one of `productId` and `categoryId`")
        if self.starts_at.tzinfo is None or (self.ends_at and self.ends_at.tzinfo is None):
            raise ValueError("times need a timezone (e.g. 2026-12-01T00:00:00Z)")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("`endsAt` must be after `startsAt`")
        return self


class DiscountPublic(CamelModel):
    id: str
    name: str
    kind: DiscountKind
    percent: Decimal | None
    amount: int | None
    product_id: str | None
    category_id: str | None
    starts_at: datetime
    ends_at: datetime | None
    active: bool


class CouponCreate(_Value):
    code: str = PydanticField(
        min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", examples=["WELCOME10"]
    )
    currency: str = PydanticField(default="USD", min_length=3, max_length=3)
    min_subtotal: StrictInt = PydanticField(default=0, ge=0, le=2_147_483_647)
    starts_at: IsoDatetime | None = None
    expires_at: IsoDatetime | None = None
    usage_limit: StrictInt | None = PydanticField(default=None, ge=1, le=2_147_483_647)
    per_user_limit: StrictInt | None = PydanticField(default=None, ge=1, le=2_147_483_647)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return price_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("starts_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return coupon_time(value)

    @model_validator(mode="after")
    def _window(self) -> CouponCreate:
        if self.starts_at and self.expires_at and self.expires_at <= self.starts_at:
            raise ValueError("`expiresAt` must be after `startsAt`")
        return self


def coupon_time(value: datetime | None) -> datetime | None:
    """A coupon's time without an offset is UTC, as the database stores it: the answer
    then says what a read of the coupon says (it showed the time without its `Z`)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class CouponUpdate(RequestModel):
    """Only the fields given change. ``expiresAt``, ``usageLimit`` and ``perUserLimit``
    may be set to null (no expiry, no limit); ``active`` and ``minSubtotal`` may not."""

    active: StrictBool | None = None
    expires_at: IsoDatetime | None = None
    usage_limit: StrictInt | None = PydanticField(default=None, ge=1, le=2_147_483_647)
    per_user_limit: StrictInt | None = PydanticField(default=None, ge=1, le=2_147_483_647)
    min_subtotal: StrictInt | None = PydanticField(default=None, ge=0, le=2_147_483_647)

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return coupon_time(value)


class CouponPublic(CamelModel):
    id: str
    code: str
    kind: DiscountKind
    percent: Decimal | None
    amount: int | None
    currency: str
    min_subtotal: int
    starts_at: datetime | None
    expires_at: datetime | None
    usage_limit: int | None
    per_user_limit: int | None
    used_count: int
    active: bool


class CouponCheck(RequestModel):
    code: SingleLineText = PydanticField(min_length=1, max_length=64)
    subtotal: StrictInt = PydanticField(ge=0, le=2_147_483_647, description="Minor units")
    currency: str = PydanticField(default="USD", min_length=3, max_length=3)


class CouponVerdict(CamelModel):
    valid: bool
    code: str
    discount: int = PydanticField(description="What the coupon takes off the subtotal")
    reason: str | None = PydanticField(
        default=None,
        description="Why it does not apply: coupon_not_found, coupon_inactive, "
        "coupon_not_started, coupon_expired, coupon_below_minimum, coupon_currency_mismatch, "
        "coupon_exhausted, coupon_user_limit_reached",
    )
    detail: str | None = None
