"""The wire shapes of ``POST /api/analytics/track``: one event, or a batch of them."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
)
from pydantic_core import PydanticCustomError

from models.analytics import EVENT_NAME
from models.base import CamelModel, IsoDatetime, RequestModel, UnionError, union_tag

# The seed's events (recorded by the shop itself, or sent by clients) and custom ones.
# Recorded by the shop in the transaction that makes them true (a cart line, an order, a
# payment, an account): a client claiming one would count a sale or a sign-up that never
# happened, so the funnel and the revenue figures could be forged.
SERVER_EVENTS = frozenset(
    {"add_to_cart", "checkout_start", "payment_start", "order_complete", "user_created"}
)
MAX_BATCH = 100
MAX_PROPERTIES_BYTES = 4096
ANONYMOUS_ID = r"^[A-Za-z0-9_.:-]{1,100}$"

# Finite numbers only: JSON (and a JSONB column) has no Infinity or NaN.
Scalar = StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | str | None
INVALID_PROPERTY_VALUE = "invalid_property_value"
# One error naming the property (``properties.level``), not one per member of the union.
PropertyValue = Annotated[
    Scalar | list[Scalar],
    UnionError(
        INVALID_PROPERTY_VALUE,
        "a property is a string, a finite number, true, false, null, or an array of those",
    ),
]

SEED_TRACK_EXAMPLE: dict[str, Any] = {
    "event": "product_view",
    "userId": "user_123",
    "properties": {"productId": "prod_456", "category": "electronics", "price": 99.99},
}


def properties_size(properties: dict[str, Any]) -> int:
    """Bytes of the properties as stored: compact UTF-8 JSON."""
    return len(json.dumps(properties, separators=(",", ":"), ensure_ascii=False).encode())


class TrackEvent(RequestModel):
    # Unknown fields are refused (RequestModel), so a body is one event or one batch,
    # never both.
    event: str = Field(
        max_length=64,
        examples=["product_view", "newsletter_signup"],
        description="The seed's `product_view` and `product_search`, or a custom name "
        "matching `^[a-z][a-z0-9_]{1,63}$`. The events the shop records itself "
        "(`add_to_cart`, `checkout_start`, `payment_start`, `order_complete`, "
        "`user_created`) are refused: 422 `reserved_event`.",
        json_schema_extra={"pattern": EVENT_NAME.pattern},
    )
    user_id: str | None = Field(
        default=None,
        max_length=40,
        description="The caller's own id, if given (the user comes from the token); "
        "anyone else's answers 403 `user_mismatch`.",
        examples=["user_01JD3K7Q8M"],
    )
    anonymous_id: str | None = Field(
        default=None,
        pattern=ANONYMOUS_ID,
        description="The client's id for a visitor before sign-in (default: the "
        "`X-Anonymous-Id` header). Signing in with it links its events to the user.",
        examples=["anon_5f1c2a"],
    )
    session_id: str | None = Field(default=None, max_length=100, examples=["sess_42"])
    timestamp: IsoDatetime | None = Field(
        default=None,
        description="When it happened; more than 24 h away from the server's time (or "
        "absent) means now.",
        examples=["2026-12-04T10:15:00Z"],
    )
    page: str | None = Field(default=None, max_length=2048, examples=["/products/aurora"])
    referrer: str | None = Field(
        default=None, max_length=2048, examples=["https://www.google.com/"]
    )
    properties: dict[Annotated[str, Field(max_length=100)], PropertyValue] = Field(
        default_factory=dict,
        description="A flat JSON object: strings, numbers, booleans, null, or arrays of "
        "those; at most 4 KB as compact JSON.",
        examples=[{"productId": "prod_456", "price": 99.99}],
    )

    @field_validator("event")
    @classmethod
    def _event_name(cls, value: str) -> str:
        if not EVENT_NAME.fullmatch(value):
            raise PydanticCustomError(
                "invalid_event_name",
                "'{given}' is not an event name: lowercase letters, digits and _, "
                "starting with a letter, 2 to 64 characters",
                {"given": value[:64]},
            )
        if value in SERVER_EVENTS:
            raise PydanticCustomError(
                "reserved_event",
                "'{given}' is recorded by the shop itself when it happens",
                {"given": value},
            )
        return value

    @field_validator("properties", mode="before")
    @classmethod
    def _flat(cls, value: object) -> object:
        if isinstance(value, dict):
            for key, item in value.items():
                items = item if isinstance(item, list) else [item]
                if any(isinstance(v, dict | list) for v in items):
                    raise PydanticCustomError(
                        "properties_not_flat",
                        "properties.{key}: values are strings, numbers, booleans, null "
                        "or arrays of those, not objects or nested arrays",
                        {"key": str(key)[:100]},
                    )
        return value

    @field_validator("properties")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = properties_size(value)
        except UnicodeEncodeError:
            raise PydanticCustomError("invalid_text", "not valid Unicode text") from None
        if size > MAX_PROPERTIES_BYTES:
            raise PydanticCustomError(
                "properties_too_large",
                "properties take {size} bytes as JSON; at most {limit}",
                {"size": size, "limit": MAX_PROPERTIES_BYTES},
            )
        return value


class TrackBatch(RequestModel):
    batch: list[TrackEvent] = Field(
        description=f"1 to {MAX_BATCH} events", json_schema_extra={"minItems": 1, "maxItems": 100}
    )

    @field_validator("batch", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_BATCH:
            raise PydanticCustomError(
                "batch_too_large" if value else "batch_empty",
                "a batch holds 1 to {limit} events; this one has {count}",
                {"limit": MAX_BATCH, "count": len(value)},
            )
        return value


def _shape(value: object) -> str:
    return union_tag("batch" if isinstance(value, dict) and "batch" in value else "event").tag


# One event or a batch, told apart by the `batch` key (so errors name only one shape).
TrackRequest = Annotated[
    Annotated[TrackEvent, union_tag("event")] | Annotated[TrackBatch, union_tag("batch")],
    Discriminator(_shape),
]


class TrackAccepted(CamelModel):
    accepted: int = Field(description="Events accepted (written within a second)", examples=[1])
