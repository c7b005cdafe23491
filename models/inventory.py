"""Stock per product, its ledger, reservations for orders, and purchase orders.

For every product, the ledger adds up to the stock numbers:
``sum(on_hand_delta) == on_hand`` and ``sum(reserved_delta) == reserved``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field as PydanticField
from pydantic import StrictInt
from sqlalchemy import (
    BigInteger,
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
from models.base import CamelModel, MultilineText, RequestModel, created_at_field, updated_at_field


class MovementKind(StrEnum):
    RECEIPT = "receipt"
    ADJUSTMENT = "adjustment"
    RESERVATION = "reservation"
    RELEASE = "release"
    SALE = "sale"
    RETURN = "return"


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    COMMITTED = "committed"
    RETURNED = "returned"  # sold, then the order was undone: back on hand
    # Sold, the order undone, but the stock was too full to count the units back in
    # (``StockService.put_back``): staff count them in by hand.
    NOT_PUT_BACK = "not_put_back"


class PurchaseOrderStatus(StrEnum):
    OPEN = "open"
    RECEIVED = "received"
    CANCELLED = "cancelled"


# The most stock a product holds: on_hand and reserved are PostgreSQL integers.
MAX_STOCK = 2_147_483_647


class StockLevel(SQLModel, table=True):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    )

    product_id: str = Field(
        sa_column=Column(String, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    )
    on_hand: int = Field(default=0)
    reserved: int = Field(default=0)
    # Set when available stock falls below the threshold (one alert per crossing);
    # cleared when it climbs back, which re-arms the alert.
    low_stock_alerted: bool = Field(default=False)
    updated_at: datetime = updated_at_field()
    # Orders the row's changes of availability (a sequence's value, set by a trigger under
    # the row's lock: migration f15c0de00040); notifications of them carry it.
    revision: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class StockMovement(SQLModel, table=True):
    __tablename__ = "stock_movements"
    __table_args__ = (Index("stock_movements_product_created_idx", "product_id", "created_at"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.MOVEMENT), primary_key=True)
    product_id: str = Field(
        sa_column=Column(String, ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    )
    kind: MovementKind = Field(sa_column=Column(String(16), nullable=False))
    on_hand_delta: int = Field(default=0)
    reserved_delta: int = Field(default=0)
    reason: str | None = Field(default=None, max_length=500)
    # The order, purchase order or staff member the movement belongs to.
    reference: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()


class Reservation(SQLModel, table=True):
    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="reservations_order_product_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index(
            "reservations_active_expiry_idx",
            "expires_at",
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.RESERVATION), primary_key=True)
    order_id: str = Field(max_length=40, index=True)
    product_id: str = Field(
        sa_column=Column(String, ForeignKey("products.id", ondelete="RESTRICT"), nullable=False)
    )
    quantity: int
    status: ReservationStatus = Field(sa_column=Column(String(16), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class PurchaseOrder(SQLModel, table=True):
    __tablename__ = "purchase_orders"
    __table_args__ = (
        # At most one open purchase order per product: auto-reorder never doubles up.
        Index(
            "purchase_orders_one_open_idx",
            "product_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.PURCHASE_ORDER), primary_key=True)
    product_id: str = Field(
        sa_column=Column(String, ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    )
    quantity: int
    status: PurchaseOrderStatus = Field(sa_column=Column(String(16), nullable=False))
    reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at_field()
    received_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


# --- wire schemas ---------------------------------------------------------------------


class StockPublic(CamelModel):
    product_id: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int


class MovementPublic(CamelModel):
    id: str
    kind: MovementKind
    on_hand_delta: int
    reserved_delta: int
    reason: str | None
    reference: str | None
    created_at: datetime


class InventoryPublic(StockPublic):
    movements: list[MovementPublic]
    total: int
    page: int
    limit: int


class StockAdjustment(RequestModel):
    delta: StrictInt = PydanticField(ge=-1_000_000, le=1_000_000, examples=[25])
    reason: MultilineText = PydanticField(min_length=1, max_length=500, examples=["cycle count"])


class PurchaseOrderPublic(CamelModel):
    id: str
    product_id: str
    quantity: int
    status: PurchaseOrderStatus
    reason: str | None
    created_at: datetime
    received_at: datetime | None


class ReservationLine(CamelModel):
    product_id: str
    quantity: int = PydanticField(gt=0, le=10_000)


class UnavailableItem(CamelModel):
    product_id: str
    requested: int
    available: int
