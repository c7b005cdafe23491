"""Users and their addresses: tables and wire schemas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field as PydanticField
from pydantic import StrictBool, field_validator
from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, text
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import (
    CamelModel,
    Email,
    RequestModel,
    SingleLineText,
    created_at_field,
    one_line,
    updated_at_field,
)


class Role(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"

    @property
    def is_staff(self) -> bool:
        return self in (Role.STAFF, Role.ADMIN)


class UserStatus(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.USER), primary_key=True)
    # Normalised (trimmed, lower-cased) before it is stored, so uniqueness ignores case.
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))
    name: str = Field(max_length=200)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_column=Column(String(16), nullable=False, server_default="customer"))
    status: UserStatus = Field(
        sa_column=Column(String(16), nullable=False, server_default="active")
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    password_changed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    deleted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Lifetime value: sums of the ``lifetime_value_entries`` ledger (services/customers.py),
    # in minor units of ``lifetime_value_currency`` (the currency of the first order).
    lifetime_value: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    lifetime_value_currency: str | None = Field(default=None, max_length=3)
    orders_count: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    first_order_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_order_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Address(SQLModel, table=True):
    __tablename__ = "addresses"
    __table_args__ = (
        # At most one default of each kind per user, enforced by the database too.
        Index(
            "addresses_one_default_shipping_idx",
            "user_id",
            unique=True,
            postgresql_where=text("is_default_shipping"),
        ),
        Index(
            "addresses_one_default_billing_idx",
            "user_id",
            unique=True,
            postgresql_where=text("is_default_billing"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.ADDRESS), primary_key=True)
    user_id: str = Field(
        sa_column=Column(
            String, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(max_length=200)
    street: str = Field(max_length=300)
    city: str = Field(max_length=120)
    state: str | None = Field(default=None, max_length=120)
    zip: str = Field(max_length=20)
    country: str = Field(max_length=2)
    phone: str | None = Field(default=None, max_length=32)
    is_default_shipping: bool = Field(default=False)
    is_default_billing: bool = Field(default=False)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


# --- wire schemas ---------------------------------------------------------------------


class UserCreate(RequestModel):
    email: Email
    password: str = PydanticField(
        min_length=1, max_length=1024, examples=["violet tangerine orbit lamp 42"]
    )
    name: SingleLineText = PydanticField(min_length=1, max_length=200, examples=["Ada Lovelace"])

    _name = field_validator("name")(one_line)


class UserUpdate(RequestModel):
    """Fields a user may change. A password change needs the current password."""

    name: SingleLineText | None = PydanticField(default=None, min_length=1, max_length=200)
    email: Email | None = None
    password: str | None = PydanticField(default=None, min_length=1, max_length=1024)
    current_password: str | None = PydanticField(default=None, max_length=256)

    _name = field_validator("name")(one_line)


class UserReplace(UserUpdate):
    """PUT: the whole editable profile."""

    name: SingleLineText = PydanticField(min_length=1, max_length=200)
    email: Email


class UserPublic(CamelModel):
    id: str = PydanticField(examples=["user_01M8A0B1C2D3E4F5G6H7J8K9MN"])
    email: str
    name: str
    role: Role
    created_at: datetime
    updated_at: datetime
    lifetime_value: int = PydanticField(
        default=0,
        examples=[12998],
        description="What the customer's orders count, in minor units of "
        "`lifetimeValueCurrency`: order totals less refunds and cancellations.",
    )
    lifetime_value_currency: str | None = PydanticField(
        default=None,
        examples=["USD"],
        description="The currency of the first order; null before any.",
    )
    orders_count: int = PydanticField(
        default=0, examples=[2], description="Orders placed and not cancelled."
    )
    first_order_at: datetime | None = PydanticField(default=None, examples=["2026-11-02T10:15:00Z"])
    last_order_at: datetime | None = PydanticField(default=None, examples=["2026-12-01T18:40:00Z"])


class AddressFields(CamelModel):
    name: SingleLineText = PydanticField(min_length=1, max_length=200, examples=["Ada Lovelace"])
    street: SingleLineText = PydanticField(min_length=1, max_length=300, examples=["123 Main St"])
    city: SingleLineText = PydanticField(min_length=1, max_length=120, examples=["Boston"])
    state: SingleLineText | None = PydanticField(default=None, max_length=120, examples=["MA"])
    zip: SingleLineText = PydanticField(min_length=1, max_length=20, examples=["02101"])
    country: SingleLineText = PydanticField(
        min_length=2, max_length=2, examples=["US"], description="ISO 3166-1 alpha-2"
    )
    phone: SingleLineText | None = PydanticField(
        default=None, max_length=32, examples=["+1 617 555 0100"]
    )
    is_default_shipping: StrictBool = False
    is_default_billing: StrictBool = False


class AddressCreate(AddressFields, RequestModel):
    """An address as a client sends it; AddressPublic shares its fields, not its strictness."""


class AddressUpdate(RequestModel):
    name: SingleLineText | None = PydanticField(default=None, min_length=1, max_length=200)
    street: SingleLineText | None = PydanticField(default=None, min_length=1, max_length=300)
    city: SingleLineText | None = PydanticField(default=None, min_length=1, max_length=120)
    state: SingleLineText | None = PydanticField(default=None, max_length=120)
    zip: SingleLineText | None = PydanticField(default=None, min_length=1, max_length=20)
    country: SingleLineText | None = PydanticField(default=None, min_length=2, max_length=2)
    phone: SingleLineText | None = PydanticField(default=None, max_length=32)
    is_default_shipping: StrictBool | None = None
    is_default_billing: StrictBool | None = None


class AddressPublic(AddressFields):
    id: str
    user_id: str
    created_at: datetime
    updated_at: datetime
