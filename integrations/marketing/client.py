"""What the shop asks of a marketing provider, whatever the provider."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from core.errors import ShopError


class MarketingRejected(ShopError):
    """The provider refused the request itself (400): retrying cannot help."""

    code = "marketing_rejected"
    title = "The marketing provider rejected the request"


class MarketingProviderUnavailable(ShopError):
    """Network errors, rate limits, 5xx, auth problems: worth retrying later."""

    status = 503
    code = "marketing_provider_unavailable"
    title = "The marketing provider is unavailable"
    retryable = True


@dataclass(frozen=True)
class CustomerContact:
    """A customer as their marketing contact shows them: absolute values, so that sending
    the same contact twice changes nothing."""

    email: str
    first_name: str | None
    last_name: str | None
    # In major units of the lifetime value's currency (a Number field, for segments
    # such as "lifetime_value > 500").
    lifetime_value: Decimal
    orders_count: int
    last_order_date: date | None


class MarketingClient(Protocol):
    async def upsert_customer(self, contact: CustomerContact, *, add_to_list: bool) -> str:
        """Create or update the contact by email with its custom fields, and (if asked)
        add it to the customers list; returns the provider's job id."""
        ...

    async def delete_contacts(self, emails: Sequence[str]) -> int:
        """Delete the contacts with these addresses (GDPR erasure); returns how many the
        provider had. Addresses it does not know are not an error."""
        ...
