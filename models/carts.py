"""Carts: one active cart per signed-in user, or a guest cart named by its token."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field as PydanticField
from pydantic import StrictBool, StrictInt
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import CamelModel, RequestModel, SingleLineText, created_at_field, updated_at_field


class CartStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"
    CHECKED_OUT = "checked_out"
    CLOSED = "closed"  # its owner's account was deleted


class Cart(SQLModel, table=True):
    __tablename__ = "carts"
    __table_args__ = (
        Index(
            "carts_one_active_per_user_idx",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'active' AND user_id IS NOT NULL"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.CART), primary_key=True)
    user_id: str | None = Field(
        default=None,
        sa_column=Column(String, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    )
    # SHA-256 of the guest cart token; the token itself is only ever in the client's hands.
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    status: CartStatus = Field(sa_column=Column(String(16), nullable=False))
    currency: str = Field(default="USD", max_length=3)
    coupon_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class CartItem(SQLModel, table=True):
    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("cart_id", "product_id", name="cart_items_cart_product_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.CART_ITEM), primary_key=True)
    cart_id: str = Field(
        sa_column=Column(
            String, ForeignKey("carts.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    product_id: str = Field(
        sa_column=Column(String, ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    )
    quantity: int
    # The effective unit price when the item was added, to tell the shopper if it moved.
    unit_price_at_add: int
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class CartShare(SQLModel, table=True):
    """A link to a cart: read-only by default, or open to edits by signed-in users."""

    __tablename__ = "cart_shares"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.CART_SHARE), primary_key=True)
    cart_id: str = Field(
        sa_column=Column(
            String, ForeignKey("carts.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    can_edit: bool = Field(default=False)
    created_at: datetime = created_at_field()
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


# --- wire schemas ---------------------------------------------------------------------


class CartItemAdd(RequestModel):
    product_id: str = PydanticField(min_length=1, max_length=40, examples=["prod_01M8…"])
    quantity: StrictInt = PydanticField(default=1, ge=1, le=10_000, examples=[2])
    user_id: str | None = PydanticField(
        default=None, description="Accepted only when it is the caller's own id (the seed's shape)"
    )


class CartItemUpdate(RequestModel):
    quantity: StrictInt = PydanticField(ge=1, le=10_000)


class CouponApply(RequestModel):
    code: SingleLineText = PydanticField(min_length=1, max_length=64, examples=["WELCOME10"])


class CartLine(CamelModel):
    product_id: str
    name: str
    slug: str
    quantity: int
    unit_price: int = PydanticField(description="Current effective unit price")
    unit_price_at_add: int
    price_changed: bool
    line_total: int
    available: int
    problem: str | None = PydanticField(
        default=None,
        examples=[None, "product_inactive"],
        description="Why checkout refuses this line now, by the code it refuses it with: "
        "`product_inactive` (taken off sale since it was added), `currency_mismatch` "
        "(repriced in another currency), `out_of_stock` (more than `available`); null "
        "when none",
    )


class CartTotals(CamelModel):
    subtotal: int = PydanticField(description="Sum of lines at list price")
    automatic_discounts: int
    coupon_discount: int
    shipping: int
    tax: int
    total: int


class CartPublic(CamelModel):
    id: str
    cart_token: str | None = PydanticField(
        default=None, description="Send it back as X-Cart-Token (guest carts)"
    )
    user_id: str | None
    currency: str
    items: list[CartLine]
    coupon_code: str | None
    coupon_problem: str | None = PydanticField(
        default=None, description="Why the applied coupon does not currently apply"
    )
    totals: CartTotals
    checkout_ready: bool = PydanticField(
        default=True,
        description="Whether checkout would take the cart as it stands (`checkoutProblem` "
        "is null); the stock and prices are judged again when the order is placed",
    )
    checkout_problem: str | None = PydanticField(
        default=None,
        examples=[None, "product_inactive"],
        description="The code checkout would refuse the cart with now: `cart_empty`, "
        "`product_inactive`, `currency_mismatch`, `order_total_too_large`, "
        "`order_total_too_small`, `coupon_not_applicable`, or a line's `out_of_stock`",
    )
    updated_at: datetime


class ShareCreate(RequestModel):
    can_edit: StrictBool = PydanticField(
        default=False, description="Let signed-in holders of the link add to this cart"
    )


class SharePublic(CamelModel):
    id: str
    token: str = PydanticField(description="Shown once; anyone holding it can use the link")
    url: str
    can_edit: bool
    created_at: datetime


class SharedCartView(CamelModel):
    """A shared cart as its link shows it: what is in it and what it costs, no personal data."""

    items: list[CartLine]
    totals: CartTotals
    currency: str
    can_edit: bool
