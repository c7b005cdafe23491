"""The fault switches the sandboxes share (HubSpot's, EasyPost's, SendGrid's): each adds
its own beside them."""

from __future__ import annotations

from pydantic import Field

from models.base import CamelModel


class ProviderFaults(CamelModel):
    failure_rate: float = Field(default=0, ge=0, le=1, description="Share of calls that fail")
    latency_ms: int = Field(default=0, ge=0, le=30_000, description="Added to every call")
    status: int | None = Field(
        default=None,
        ge=400,
        le=599,
        description="The status failing calls answer (500 if unset); alone, every call fails",
    )
    lost_answer_rate: float = Field(
        default=0,
        ge=0,
        le=1,
        description="Share of calls that take effect but answer 500, as when the answer "
        "was lost on the way back",
    )
