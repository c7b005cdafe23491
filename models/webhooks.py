"""Outgoing webhook endpoints: where staff want domain events sent, signed with the
endpoint's secret (Standard Webhooks). Managed at ``/api/admin/webhooks``."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field as PydanticField
from pydantic import StrictBool, StrictInt
from sqlalchemy import Column, DateTime, Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import CamelModel, MultilineText, RequestModel, created_at_field, updated_at_field

# An endpoint taking every event type.
ALL_EVENTS = "*"
MAX_URL_LENGTH = 2048
MAX_EVENT_TYPES = 50
URL_EXAMPLE = "https://hooks.example.com/shopweave"
SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqXTX6X7L5nqP0X9mC3hQ5uYyY1pTq0kzQ="


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.WEBHOOK_ENDPOINT), primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    # Event type values, or ["*"] for all of them.
    event_types: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    enabled: bool = True
    # ``whsec_`` + base64 of the random key bytes; the HMAC key is those bytes. Kept
    # readable (a signature needs it), shown to staff only when created or rotated.
    secret: str = Field(sa_column=Column(Text, nullable=False))
    # The secret a rotation replaced, still signing (beside ``secret``) until then.
    previous_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Failed deliveries (retries exhausted, or refused) since the last success, and when
    # the first of them failed: too many for too long disables the endpoint.
    consecutive_failures: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    failing_since: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Set when the endpoint was disabled (by the failure rule or by staff); cleared on
    # re-enabling.
    disabled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class WebhookEndpointCreate(RequestModel):
    url: str = PydanticField(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="https, or http to localhost / 127.0.0.1 for development",
        examples=[URL_EXAMPLE],
    )
    event_types: list[str] = PydanticField(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description='`["*"]` for every event, or a list of event types',
        examples=[["order.created", "order.cancelled"]],
    )
    description: MultilineText = PydanticField(
        default="", max_length=500, examples=["ERP order sync"]
    )
    enabled: StrictBool = True


class WebhookEndpointUpdate(RequestModel):
    """Only the fields sent change."""

    url: str | None = PydanticField(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    event_types: list[str] | None = PydanticField(
        default=None, min_length=1, max_length=MAX_EVENT_TYPES
    )
    description: MultilineText | None = PydanticField(default=None, max_length=500)
    enabled: StrictBool | None = None


class WebhookEndpointPublic(CamelModel):
    id: str = PydanticField(examples=["whk_01JEX5A1B2C3D4E5F6G7H8J9K0"])
    url: str = PydanticField(examples=[URL_EXAMPLE])
    event_types: list[str] = PydanticField(examples=[["order.created", "order.cancelled"]])
    description: str
    enabled: bool
    disabled_at: datetime | None = PydanticField(
        description="When it was disabled (by staff, or by too many failed deliveries)"
    )
    disabled_reason: str | None = PydanticField(
        examples=["10 consecutive failed deliveries since 2026-12-01T09:00:00+00:00"]
    )
    consecutive_failures: int = PydanticField(
        description="Failed deliveries since the last success (reset by a success or by "
        "re-enabling)",
        examples=[0],
    )
    failing_since: datetime | None = PydanticField(
        description="When the first of those failures failed"
    )
    previous_secret_expires_at: datetime | None = PydanticField(
        description="Until then the secret replaced by the last rotation also signs"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> WebhookEndpointPublic:
        """The row's public fields, read by name (never its secrets)."""
        return cls.model_validate(row, from_attributes=True)


# Standard Webhooks' suggestion: the old secret keeps working for a day.
DEFAULT_ROTATION_GRACE_SECONDS = 24 * 3600
MAX_ROTATION_GRACE_SECONDS = 7 * 24 * 3600


class WebhookSecretRotation(RequestModel):
    expires_in_seconds: StrictInt = PydanticField(
        default=DEFAULT_ROTATION_GRACE_SECONDS,
        ge=0,
        le=MAX_ROTATION_GRACE_SECONDS,
        description="How long the old secret keeps signing beside the new one (0: it "
        "stops at once). At most 7 days.",
        examples=[DEFAULT_ROTATION_GRACE_SECONDS],
    )


class WebhookEndpointWithSecret(WebhookEndpointPublic):
    """The endpoint and its signing secret: answered only by create and rotate-secret."""

    secret: str = PydanticField(examples=[SECRET_EXAMPLE])

    @classmethod
    def revealing(cls, row: WebhookEndpoint) -> WebhookEndpointWithSecret:
        return cls(**WebhookEndpointPublic.of(row).model_dump(), secret=row.secret)
