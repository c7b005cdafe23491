"""Customer lifetime value, kept as a ledger of entries per (order, event).

``order.created`` adds the order's total and one order; ``payment.refunded`` takes the
refunded amount out, never more than the order still counts; ``order.cancelled`` (and
``order.failed`` or ``payment.failed`` of an order that failed after it was counted, e.g.
its capture failed) takes out what the order still counts and one order. So a
cancelled, refunded order is taken out once whichever of its two events comes first, and
an order cancelled before it was counted (or a replayed ``order.created`` of a cancelled
order) counts nothing.

``payment.refund_failed`` (a refund the card's bank sent back: the money is the shop's
again) gives back its amount, capped at what refunds and the cancellation have taken out
of the order and not been given back yet, so the order never counts more than its total;
a cancelled order's bounced refund counts too (the shop holds the money), but not as an
order. Refunded again, the order loses it again through the refund rule.

The totals on ``users`` are recomputed from the customer's ledger in the transaction
that adds an entry, under a lock on the user's row: two orders of one customer handled
at once cannot lose an update, and every total is explained by the entries.

Currency: the shop prices in one currency today (carts are created in USD), but orders
carry theirs. Entries keep their currency; ``users.lifetime_value`` is the sum in the
currency of the customer's first order (``lifetime_value_currency``) and orders in other
currencies still count in ``orders_count`` and stay in the ledger (``by_currency``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.errors import ShopError
from core.events import EventType
from models.customers import LedgerKind, LifetimeValueEntry
from models.users import User
from services.events.subscribers import DomainEvent

# An order can fail after it was counted (its capture fails after create-order
# published order.created): ``order.failed`` and ``payment.failed`` take it out as a
# cancellation does.
ENDINGS = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_FAILED, EventType.PAYMENT_FAILED})
LIFETIME_VALUE_EVENTS = frozenset(
    {
        EventType.ORDER_CREATED,
        EventType.PAYMENT_REFUNDED,
        EventType.PAYMENT_REFUND_FAILED,
        *ENDINGS,
    }
)


class LifetimeValueEventInvalid(ShopError):
    """An event whose data cannot be entered (a bug upstream): a dead letter, not a retry."""

    status = 422
    code = "lifetime_value_event_invalid"
    title = "The event cannot be entered in the lifetime value ledger"


@dataclass(frozen=True)
class LifetimeTotals:
    lifetime_value: int = 0
    currency: str | None = None
    orders_count: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    by_currency: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Projection:
    """A customer's totals with one event entered (whether or not it is yet)."""

    user_id: str
    totals: LifetimeTotals
    entry: LifetimeValueEntry | None


def summarize(entries: Iterable[LifetimeValueEntry]) -> LifetimeTotals:
    """A customer's totals from their ledger entries."""
    rows = list(entries)
    cancelled = {e.order_id for e in rows if e.kind == LedgerKind.CANCELLATION}
    placed = sorted(
        (e for e in rows if e.kind == LedgerKind.ORDER), key=lambda e: (e.occurred_at, e.order_id)
    )
    by_currency: dict[str, int] = defaultdict(int)
    for entry in rows:
        by_currency[entry.currency] += entry.amount
    counted = [e for e in placed if e.order_id not in cancelled]
    currency = placed[0].currency if placed else None
    return LifetimeTotals(
        lifetime_value=by_currency.get(currency, 0) if currency else 0,
        currency=currency,
        orders_count=sum(e.orders_delta for e in rows),
        first_order_at=counted[0].occurred_at if counted else None,
        last_order_at=counted[-1].occurred_at if counted else None,
        by_currency=dict(by_currency),
    )


def _amount(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LifetimeValueEventInvalid(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _same_currency(event: DomainEvent, placed: LifetimeValueEntry) -> None:
    currency = str(event.data.get("currency") or placed.currency).upper()
    if currency != placed.currency:
        raise LifetimeValueEventInvalid(
            f"{event.type} in {currency} of order {placed.order_id} placed in {placed.currency}"
        )


def plan_entry(
    event: DomainEvent, user_id: str, order_entries: list[LifetimeValueEntry]
) -> LifetimeValueEntry | None:
    """The ledger entry ``event`` makes given the order's entries so far, or None when it
    changes nothing (entered before, or nothing left to take out)."""
    if any(e.event_id == event.id for e in order_entries):
        return None
    order_id = str(event.data["orderId"])
    placed = next((e for e in order_entries if e.kind == LedgerKind.ORDER), None)
    cancelled = any(e.kind == LedgerKind.CANCELLATION for e in order_entries)
    still_counts = sum(e.amount for e in order_entries)

    def entry(
        kind: LedgerKind, amount: int, currency: str, orders_delta: int
    ) -> LifetimeValueEntry:
        return LifetimeValueEntry(
            event_id=event.id,
            user_id=user_id,
            order_id=order_id,
            kind=kind,
            amount=amount,
            currency=currency,
            orders_delta=orders_delta,
            occurred_at=event.created_at,
        )

    if event.type is EventType.ORDER_CREATED:
        if placed is not None or cancelled:
            return None  # counted already, or a replay of an order since cancelled
        total = _amount(event.data, "total")
        return entry(LedgerKind.ORDER, total, str(event.data["currency"]).upper(), 1)
    if event.type is EventType.PAYMENT_REFUNDED:
        if placed is None or still_counts <= 0:
            return None  # never counted, or already taken out (e.g. by its cancellation)
        refunded = _amount(event.data, "amount")
        _same_currency(event, placed)
        taken = min(refunded, still_counts)
        return entry(LedgerKind.REFUND, -taken, placed.currency, 0) if taken else None
    if event.type is EventType.PAYMENT_REFUND_FAILED:
        if placed is None:
            return None  # never counted: nothing was taken out
        bounced = _amount(event.data, "amount")
        _same_currency(event, placed)
        # What refunds and the cancellation took out, less what bounced refunds gave
        # back already: the order never counts more than its total. A cancelled order's
        # counts again too (its money is the shop's), though not as an order.
        given = min(bounced, placed.amount - still_counts)
        return entry(LedgerKind.REFUND_FAILED, given, placed.currency, 0) if given > 0 else None
    if event.type in ENDINGS:
        if cancelled:
            return None
        if placed is None:
            # Cancelled before it was counted: nothing to take out, but the entry keeps a
            # late or replayed order.created from counting it.
            currency = str(event.data.get("currency") or "USD").upper()
            return entry(LedgerKind.CANCELLATION, 0, currency, 0)
        return entry(LedgerKind.CANCELLATION, -max(still_counts, 0), placed.currency, -1)
    return None


class LifetimeValueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_user(self, user_id: str) -> User | None:
        result = await self.session.exec(locked(select(User).where(User.id == user_id)))
        return result.first()

    async def order_entries(self, order_id: str) -> list[LifetimeValueEntry]:
        result = await self.session.exec(
            select(LifetimeValueEntry).where(LifetimeValueEntry.order_id == order_id)
        )
        return list(result.all())

    async def user_entries(self, user_id: str) -> list[LifetimeValueEntry]:
        result = await self.session.exec(
            select(LifetimeValueEntry)
            .where(LifetimeValueEntry.user_id == user_id)
            .order_by(col(LifetimeValueEntry.occurred_at), col(LifetimeValueEntry.event_id))
        )
        return list(result.all())

    async def add(self, entry: LifetimeValueEntry) -> None:
        self.session.add(entry)
        await self.session.flush()

    async def save_user(self, user: User) -> None:
        self.session.add(user)
        await self.session.flush()


class LifetimeValueService:
    def __init__(self, session: AsyncSession) -> None:
        self.ledger = LifetimeValueRepository(session)

    @staticmethod
    def _order_id(event: DomainEvent) -> str:
        order_id = event.data.get("orderId")
        if not isinstance(order_id, str) or not order_id:
            raise LifetimeValueEventInvalid(f"{event.type} {event.id} has no orderId")
        return order_id

    @staticmethod
    def _user_of(event: DomainEvent, entries: list[LifetimeValueEntry]) -> str | None:
        user_id = event.data.get("userId")
        if isinstance(user_id, str) and user_id:
            return user_id
        # payment.refunded (and refund_failed) names the order only; its customer is on
        # the order's entries.
        return entries[0].user_id if entries else None

    async def project(self, event: DomainEvent) -> Projection | None:
        """The customer's totals with ``event`` entered, without entering it: what the
        customer's marketing contact should say once this event is handled, whether the
        lifetime value subscriber has handled it yet or not (if that subscriber is
        behind by more than this event, the ones it has not handled are missing). None
        for a refund of an order that was never counted (no customer to speak of)."""
        order_id = self._order_id(event)
        user_id = self._user_of(event, await self.ledger.order_entries(order_id))
        if user_id is None:
            return None
        # One read of the ledger for both the plan and the totals: two reads could
        # straddle the lifetime_value subscriber's commit of this very event (the plan
        # would not see its entry, the totals would) and count the order twice.
        entries = await self.ledger.user_entries(user_id)
        entry = plan_entry(event, user_id, [e for e in entries if e.order_id == order_id])
        return Projection(user_id, summarize([*entries, *([entry] if entry else [])]), entry)

    async def was_counted(self, event: DomainEvent) -> bool:
        """Whether the event's order ever counted (its ``order.created`` was entered)."""
        entries = await self.ledger.order_entries(self._order_id(event))
        return any(e.kind == LedgerKind.ORDER for e in entries)

    async def value_before(self, user_id: str, order_id: str, currency: str) -> int:
        """What the customer's *other* orders count in ``currency``: their lifetime value
        as it stood before this order, whether or not this order is entered yet."""
        entries = [e for e in await self.ledger.user_entries(user_id) if e.order_id != order_id]
        return summarize(entries).by_currency.get(currency.upper(), 0)

    async def record(self, event: DomainEvent) -> LifetimeValueEntry | None:
        """Enter ``event`` in its customer's ledger and update their totals, in the
        caller's transaction. Returns the entry made, or None if it changes nothing."""
        if event.type not in LIFETIME_VALUE_EVENTS:
            return None
        order_id = self._order_id(event)
        user_id = self._user_of(event, await self.ledger.order_entries(order_id))
        if user_id is None:
            return None
        user = await self.ledger.lock_user(user_id)
        if user is None:
            raise LifetimeValueEventInvalid(f"{event.type} {event.id}: no user {user_id}")
        # Read again under the lock: the customer's other events wait for this one.
        entry = plan_entry(event, user_id, await self.ledger.order_entries(order_id))
        if entry is None:
            return None
        await self.ledger.add(entry)
        totals = summarize(await self.ledger.user_entries(user_id))
        user.lifetime_value = totals.lifetime_value
        user.lifetime_value_currency = totals.currency
        user.orders_count = totals.orders_count
        user.first_order_at = totals.first_order_at
        user.last_order_at = totals.last_order_at
        await self.ledger.save_user(user)
        return entry
