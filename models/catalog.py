"""The catalogue: categories (a tree), products (the sellable unit) and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field as PydanticField
from pydantic import HttpUrl, StrictBool, StrictInt, field_validator
from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from core.money import MoneyError, price_currency
from models.base import (
    CamelModel,
    MultilineText,
    Page,
    RequestModel,
    SingleLineText,
    created_at_field,
    one_line,
    updated_at_field,
)

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


# Amounts are 32-bit integer columns: 21,474,836.47 in a 2-decimal currency at most.
MAX_AMOUNT = 2_147_483_647


class Category(SQLModel, table=True):
    __tablename__ = "categories"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.CATEGORY), primary_key=True)
    name: str = Field(max_length=120)
    slug: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    parent_id: str | None = Field(
        default=None,
        sa_column=Column(String, ForeignKey("categories.id", ondelete="RESTRICT"), index=True),
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint(
            "compare_at_price IS NULL OR compare_at_price >= 0", name="compare_at_not_negative"
        ),
        CheckConstraint("rating_count >= 0 AND rating_sum >= 0", name="rating_not_negative"),
        Index("products_search_idx", "search_vector", postgresql_using="gin"),
        Index(
            "products_name_trgm_idx",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        Index("products_active_created_at_idx", "active", "created_at"),
        Index("products_active_price_idx", "active", "price"),
        # Listings read a page's ids (and a filtered listing its count) from these alone:
        # they hold every column a listing filters or sorts on, of listed products only.
        Index(
            "products_listing_category_price_idx",
            "category_id",
            "price",
            postgresql_include=["id", "created_at", "rating_sum", "rating_count"],
            postgresql_where=text("active AND deleted_at IS NULL"),
        ),
        Index(
            "products_listing_created_at_idx",
            "created_at",
            "id",
            postgresql_where=text("active AND deleted_at IS NULL"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.PRODUCT), primary_key=True)
    sku: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(max_length=200)
    slug: str = Field(sa_column=Column(String(220), nullable=False, unique=True))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    category_id: str | None = Field(
        default=None,
        sa_column=Column(String, ForeignKey("categories.id", ondelete="SET NULL"), index=True),
    )
    price: int
    currency: str = Field(max_length=3)
    compare_at_price: int | None = Field(default=None)
    images: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    active: bool = Field(default=True)
    low_stock_threshold: int = Field(default=10)
    auto_reorder: bool = Field(default=False)
    reorder_quantity: int = Field(default=0)
    # Review aggregates, updated in the same transaction as each review.
    rating_count: int = Field(default=0)
    rating_sum: int = Field(default=0)
    rating_1: int = Field(default=0)
    rating_2: int = Field(default=0)
    rating_3: int = Field(default=0)
    rating_4: int = Field(default=0)
    rating_5: int = Field(default=0)
    search_vector: str | None = Field(
        default=None,
        sa_column=Column(
            TSVECTOR,
            Computed(
                "setweight(to_tsvector('english', coalesce(name, '')), 'A') || "
                "setweight(to_tsvector('english', coalesce(description, '')), 'B')",
                persisted=True,
            ),
        ),
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    deleted_at: datetime | None = Field(default=None, nullable=True)


class Review(SQLModel, table=True):
    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("product_id", "user_id", name="reviews_one_per_user_key"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.REVIEW), primary_key=True)
    product_id: str = Field(
        sa_column=Column(
            String, ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    user_id: str = Field(
        sa_column=Column(String, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    rating: int
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    verified_purchase: bool = Field(default=False)
    hidden: bool = Field(default=False)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


# --- wire schemas ---------------------------------------------------------------------


class CategoryCreate(RequestModel):
    name: SingleLineText = PydanticField(min_length=1, max_length=120, examples=["Headphones"])
    slug: str = PydanticField(
        min_length=1, max_length=120, pattern=SLUG_PATTERN, examples=["headphones"]
    )
    parent_id: str | None = PydanticField(default=None, examples=["cat_01M8…"])

    _name = field_validator("name")(one_line)


class CategoryNode(CamelModel):
    id: str
    name: str
    slug: str
    parent_id: str | None
    children: list[CategoryNode] = PydanticField(default_factory=list)


class ProductFields(RequestModel):
    sku: str = PydanticField(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", examples=["HP-WL-100"]
    )
    name: SingleLineText = PydanticField(
        min_length=1, max_length=200, examples=["Wireless Headphones"]
    )
    description: MultilineText = PydanticField(default="", max_length=20_000)
    category_id: str | None = None
    price: StrictInt = PydanticField(
        ge=0, le=MAX_AMOUNT, description="Minor units", examples=[9999]
    )
    currency: str = PydanticField(default="USD", min_length=3, max_length=3, examples=["USD"])
    compare_at_price: StrictInt | None = PydanticField(default=None, ge=0, le=MAX_AMOUNT)
    images: list[HttpUrl] = PydanticField(default_factory=list, max_length=20)
    attributes: dict[str, Any] = PydanticField(default_factory=dict, max_length=50)
    active: StrictBool = True
    low_stock_threshold: StrictInt = PydanticField(default=10, ge=0, le=1_000_000)
    auto_reorder: StrictBool = False
    reorder_quantity: StrictInt = PydanticField(default=0, ge=0, le=1_000_000)

    _name = field_validator("name")(one_line)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return price_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from exc


class ProductCreate(ProductFields):
    slug: str | None = PydanticField(default=None, max_length=220, pattern=SLUG_PATTERN)


class ProductUpdate(RequestModel):
    sku: str | None = PydanticField(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$"
    )
    name: SingleLineText | None = PydanticField(default=None, min_length=1, max_length=200)
    slug: str | None = PydanticField(default=None, max_length=220, pattern=SLUG_PATTERN)
    description: MultilineText | None = PydanticField(default=None, max_length=20_000)
    category_id: str | None = None
    price: StrictInt | None = PydanticField(default=None, ge=0, le=MAX_AMOUNT)
    currency: str | None = PydanticField(default=None, min_length=3, max_length=3)
    compare_at_price: StrictInt | None = PydanticField(default=None, ge=0, le=MAX_AMOUNT)
    images: list[HttpUrl] | None = PydanticField(default=None, max_length=20)
    attributes: dict[str, Any] | None = PydanticField(default=None, max_length=50)
    active: StrictBool | None = None
    low_stock_threshold: StrictInt | None = PydanticField(default=None, ge=0, le=1_000_000)
    auto_reorder: StrictBool | None = None
    reorder_quantity: StrictInt | None = PydanticField(default=None, ge=0, le=1_000_000)

    _name = field_validator("name")(one_line)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        # As a new product's (``ProductFields``): a change is held to the same rule.
        return None if value is None else ProductFields._currency(value)


class RatingSummary(CamelModel):
    average: float | None = PydanticField(description="Mean of visible ratings, 2 decimals")
    count: int
    histogram: dict[str, int] = PydanticField(examples=[{"1": 0, "2": 1, "3": 0, "4": 3, "5": 9}])


class ProductPublic(CamelModel):
    id: str
    sku: str
    name: str
    slug: str
    description: str
    category_id: str | None
    price: int
    effective_price: int = PydanticField(description="Price after automatic discounts")
    currency: str
    compare_at_price: int | None
    images: list[str]
    attributes: dict[str, Any]
    active: bool
    low_stock_threshold: int
    auto_reorder: bool
    reorder_quantity: int
    rating: RatingSummary
    available: int = PydanticField(description="Units that can be ordered now (on hand - reserved)")
    created_at: datetime
    updated_at: datetime


class ProductPage(Page[ProductPublic]):
    """A page of products. A search counts its matches up to 1,000: above that, `total`
    is 1,000, a lower bound, and `totalExact` is false (relevance-ranked pages end
    there). Listings without `search` always count exactly."""

    total_exact: bool = PydanticField(
        default=True, description="False when `total` is a lower bound (a search past 1,000)"
    )


class ReviewCreate(RequestModel):
    rating: StrictInt = PydanticField(ge=1, le=5)
    title: SingleLineText = PydanticField(min_length=1, max_length=200)
    body: MultilineText = PydanticField(min_length=1, max_length=10_000)

    _title = field_validator("title")(one_line)

    @field_validator("body")
    @classmethod
    def _body_not_blank(cls, value: str) -> str:
        value = value.strip()  # its line breaks are the reviewer's
        if not value:
            raise ValueError("must not be blank")
        return value


class ReviewPublic(CamelModel):
    id: str
    product_id: str
    user_id: str
    rating: int
    title: str
    body: str
    verified_purchase: bool
    hidden: bool
    created_at: datetime
