"""What every table shares: the constraint naming convention and timestamp columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from sqlalchemy import DateTime, MetaData, func
from sqlmodel import Field, SQLModel

# fastapi-best-practices: predictable constraint and index names, so migrations can
# refer to them and autogenerate never invents random ones.
NAMING_CONVENTION = {
    "ix": "%(column_0_label)s_idx",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def created_at_field() -> datetime:
    field: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now(), "nullable": False},
    )
    return field


def updated_at_field() -> datetime:
    """Set on insert; services set it on every update (``onupdate`` covers ORM flushes)."""
    field: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now(), "nullable": False, "onupdate": utcnow},
    )
    return field


class CamelModel(BaseModel):
    """Wire schemas: snake_case in Python, camelCase on the wire (ARCHITECTURE §4)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Page(CamelModel, Generic[T]):
    """A page of a list: ``items`` and the ``total`` across all pages."""

    items: list[T]
    total: int
    page: int
    limit: int
