"""What the shop tells its CRM: people (contacts) and orders (deals), provider-neutral.

Every call is idempotent at the provider: contacts are keyed by email, deals by the
order id (a unique property), so a repeated call changes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from core.errors import ShopError
from core.money import Money


class DealStage(StrEnum):
    """Where an order's deal stands; each CRM maps these to its own pipeline stages."""

    PLACED = "placed"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class Contact:
    email: str
    first_name: str
    last_name: str
    user_id: str


@dataclass(frozen=True)
class Deal:
    order_id: str
    name: str
    amount: Money
    stage: DealStage
    close_date: datetime


class CrmRejected(ShopError):
    """The CRM refused the request itself (validation): retrying cannot help."""

    status = 502
    code = "crm_rejected"
    title = "The CRM rejected the request"


class CrmUnavailable(ShopError):
    """Network errors, rate limits, 5xx, auth problems: worth retrying later."""

    status = 503
    code = "crm_unavailable"
    title = "The CRM is unavailable"
    retryable = True


class CrmClient(Protocol):
    async def upsert_contact(self, contact: Contact) -> str:
        """Create or update the contact with this email; returns the CRM's contact id."""
        ...

    async def upsert_deal(self, deal: Deal, contact_id: str | None) -> str:
        """Create the order's deal, or update it if it exists (its stage is then left
        alone: a replayed ``order.created`` must not reopen a won deal); associate it
        with the contact. Returns the CRM's deal id."""
        ...

    async def set_deal_stage(self, order_id: str, stage: DealStage, at: datetime) -> bool:
        """Move the order's deal to ``stage`` (closed at ``at`` when won or lost); False
        when the order has no deal."""
        ...

    async def forget_contacts(self, user_id: str) -> int:
        """Erase (GDPR) every contact made for this customer; returns how many."""
        ...
