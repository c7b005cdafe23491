"""What ``shop seed`` needs beyond the domain services: knowing its own records, placing a
seeded customer's order, and moving seeded orders into the past. All its SQL is here.

The seed recognises what it created by the keys it gives them, so that each part tops up
to its target counting only its own records and never touches anyone else's:

- products by their SKU: ``SW-`` and seven digits (``SW-0000001``);
- customers by their email: ``customer``, five or more digits, ``@example.com`` (a domain
  reserved for examples by RFC 2606, so no real shopper has one);
- reviews as those of seeded customers on seeded products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from models.analytics import AnalyticsEvent
from models.catalog import Product, Review
from models.inventory import MovementKind
from models.order_api import OrderCreate, PaymentMethodIn
from models.orders import Order
from models.users import User, UserStatus
from models.workflow_starts import WorkflowStart
from services.addresses import AddressService
from services.analytics import AnalyticsRecorder
from services.carts import CartService
from services.checkout import Checkout
from services.inventory import StockService
from services.order_repository import OrderRepository
from services.users import UserNotFound, UserRepository

SEED_SKU_PATTERN = r"^SW-[0-9]{7}$"
SEED_EMAIL_PATTERN = r"^customer[0-9]{5,}@example\.com$"


def seed_sku(number: int) -> str:
    return f"SW-{number:07d}"


def seed_email(number: int) -> str:
    return f"customer{number:05d}@example.com"


def _seeded_product() -> ColumnElement[bool]:
    return col(Product.sku).regexp_match(SEED_SKU_PATTERN)


def _seeded_customer() -> ColumnElement[bool]:
    return col(User.email).regexp_match(SEED_EMAIL_PATTERN)


def _ids(name: str, ids: Sequence[str]) -> Any:
    # One array parameter, however many ids (an IN list is capped at 32,767 parameters).
    return any_(bindparam(name, list(ids), type_=ARRAY(String)))


@dataclass(frozen=True)
class SeededProduct:
    id: str
    category_id: str | None
    price: int


# Shift each order, its timeline, payment, payment history and the analytics events that
# name it by the same amount; every part reads the rows as they were before the statement.
# Moved events are received again, so the rollup relinks their people (``links.py``).
MOVE_ORDERS = """
WITH target AS (
    SELECT t.id, t.at - o.created_at AS shift
    FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS t(id, at)
    JOIN orders o ON o.id = t.id
), timeline AS (
    UPDATE order_events e SET created_at = e.created_at + target.shift
    FROM target WHERE e.order_id = target.id
), paid AS (
    UPDATE payments p
    SET created_at = p.created_at + target.shift, updated_at = p.updated_at + target.shift
    FROM target WHERE p.order_id = target.id
), payment_history AS (
    UPDATE payment_events pe SET created_at = pe.created_at + target.shift
    FROM payments p JOIN target ON p.order_id = target.id
    WHERE pe.payment_id = p.id
), tracked AS (
    UPDATE analytics_events a SET created_at = a.created_at + target.shift, received_at = now()
    FROM target WHERE a.properties ->> 'orderId' = target.id
)
UPDATE orders o
SET created_at = o.created_at + target.shift, updated_at = o.updated_at + target.shift
FROM target WHERE o.id = target.id
"""
SET_EVENT_TIMES = """
UPDATE analytics_events a SET created_at = t.at, received_at = now()
FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS t(id, at)
WHERE a.id = t.id
"""
PAYMENT_EVENTS = """
SELECT count(*) FROM payment_events pe JOIN payments p ON p.id = pe.payment_id
WHERE p.order_id = ANY(CAST(:ids AS text[]))
"""


class SeedRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def skus_between(self, first: int, last: int) -> set[str]:
        """The seeded SKUs numbered ``first`` to ``last`` that exist (in any state)."""
        rows = await self.session.exec(
            select(Product.sku).where(
                col(Product.sku).between(seed_sku(first), seed_sku(last)), _seeded_product()
            )
        )
        return set(rows.all())

    async def products(self, limit: int) -> list[SeededProduct]:
        """Seeded products on sale, by SKU."""
        rows = await self.session.exec(
            select(Product.id, Product.category_id, Product.price)
            .where(
                _seeded_product(),
                col(Product.active).is_(True),
                col(Product.deleted_at).is_(None),
            )
            .order_by(col(Product.sku))
            .limit(limit)
        )
        return [SeededProduct(*row) for row in rows.all()]

    async def customers(self) -> dict[str, str]:
        """Email → id of every active seeded customer."""
        rows = await self.session.exec(
            select(User.email, User.id).where(_seeded_customer(), User.status == UserStatus.ACTIVE)
        )
        return dict(rows.all())

    async def reviews(self) -> set[tuple[str, str]]:
        """(user, product) of every review by a seeded customer on a seeded product."""
        rows = await self.session.exec(
            select(Review.user_id, Review.product_id)
            .join(User, col(User.id) == col(Review.user_id))
            .join(Product, col(Product.id) == col(Review.product_id))
            .where(_seeded_customer(), _seeded_product())
        )
        return set(rows.all())

    async def order_count(self, user_ids: Sequence[str]) -> int:
        rows = await self.session.exec(
            select(func.count())
            .select_from(Order)
            .where(col(Order.user_id) == _ids("user_ids", user_ids))
        )
        return int(rows.one())

    async def payment_event_count(self, order_ids: Sequence[str]) -> int:
        result = await self.session.exec(
            text(PAYMENT_EVENTS),  # type: ignore[call-overload]
            params={"ids": list(order_ids)},
        )
        return int(result.scalar() or 0)

    async def move_orders(self, ids: Sequence[str], ats: Sequence[datetime]) -> None:
        await self.session.exec(
            text(MOVE_ORDERS),  # type: ignore[call-overload]
            params={"ids": list(ids), "ats": list(ats)},
        )

    async def set_event_times(self, ids: Sequence[str], ats: Sequence[datetime]) -> None:
        await self.session.exec(
            text(SET_EVENT_TIMES),  # type: ignore[call-overload]
            params={"ids": list(ids), "ats": list(ats)},
        )


class SeedRecords:
    """What the seed made already, so that it adds only what is missing."""

    def __init__(self, session: AsyncSession) -> None:
        self.seeded = SeedRepository(session)

    async def missing_products(self, first: int, last: int) -> list[int]:
        present = await self.seeded.skus_between(first, last)
        return [n for n in range(first, last + 1) if seed_sku(n) not in present]

    async def products(self, limit: int) -> list[SeededProduct]:
        return await self.seeded.products(limit)

    async def customers(self) -> dict[str, str]:
        return await self.seeded.customers()

    async def reviews(self) -> set[tuple[str, str]]:
        return await self.seeded.reviews()

    async def orders_of(self, user_ids: Sequence[str]) -> int:
        return await self.seeded.order_count(user_ids)


class CollectingRecorder(AnalyticsRecorder):
    """Records as usual and remembers the rows, so that their dates can be set later."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled)
        self.rows: list[AnalyticsEvent] = []

    async def track(
        self,
        session: AsyncSession,
        event: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: dict[str, Any] | None = None,
        hold_account: bool = False,
    ) -> AnalyticsEvent | None:
        row = await super().track(
            session,
            event,
            user_id=user_id,
            session_id=session_id,
            properties=properties,
            hold_account=hold_account,
        )
        if row is not None:
            self.rows.append(row)
        return row

    def ids(self, event: str) -> list[str]:
        return [row.id for row in self.rows if row.event == event]


@dataclass(frozen=True)
class OrderOutcome:
    status: str
    failure_code: str | None


class SeedCheckout:
    """A seeded customer's order through the real checkout: stock received, the cart
    filled as a shopper fills it, then ``Checkout.place``."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def stock_for(self, demand: Mapping[str, int], margin: int) -> None:
        """Enough stock for ``demand``, and ``margin`` more (above the low-stock line)."""
        inventory = StockService(self.session)
        for product_id in sorted(demand):
            missing = demand[product_id] + margin - (await inventory.get(product_id)).available
            if missing > 0:
                await inventory.adjust(
                    product_id, missing, "seed: stock for orders", kind=MovementKind.RECEIPT
                )

    async def place(
        self,
        user_id: str,
        lines: Sequence[tuple[str, int]],
        token: str,
        fallback_address: Mapping[str, str],
        analytics: AnalyticsRecorder,
    ) -> tuple[Order, WorkflowStart | None]:
        """The order of ``lines`` paid with ``token``, to the customer's default shipping
        address; when an order of an earlier, interrupted run still holds the cart, that
        order and no start."""
        carts = CartService(self.session, self.settings, analytics)
        owned = await carts.find_or_create(user_id, None)
        live = await OrderRepository(self.session).live_for_cart(owned.cart.id)
        if live is not None:
            return live, None
        await carts.clear(owned)  # what a declined order left behind
        for product_id, quantity in lines:
            await carts.add(owned, product_id, quantity)
        user = await UserRepository(self.session).get(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        addresses = await AddressService(self.session).list(user_id)
        default = next((a.id for a in addresses if a.is_default_shipping), None)
        body: dict[str, Any] = {
            "cartId": owned.cart.id,
            "paymentMethod": PaymentMethodIn(type="card", token=token),
        }
        body |= {"shippingAddressId": default} if default else {"shippingAddress": fallback_address}
        return await Checkout(self.session, self.settings).place(
            user, OrderCreate.model_validate(body)
        )

    async def outcome(self, order_id: str) -> OrderOutcome:
        order = await OrderRepository(self.session).require(order_id)
        return OrderOutcome(str(order.status), order.failure_code)


class Backdating:
    """Seeded orders moved into the past with everything that belongs to them, and the
    browsing before them written at the dates it would have happened."""

    def __init__(self, session: AsyncSession, analytics: AnalyticsRecorder) -> None:
        self.session = session
        self.seeded = SeedRepository(session)
        self.analytics = analytics

    async def payment_events(self, order_ids: Sequence[str]) -> int:
        return await self.seeded.payment_event_count(order_ids)

    async def move_orders(self, moves: Sequence[tuple[str, datetime]]) -> None:
        """Each order (with its timeline, payment, payment history and analytics) shifted
        so that it was created at the given moment, intervals kept."""
        if moves:
            await self.seeded.move_orders([i for i, _ in moves], [at for _, at in moves])

    async def set_event_times(self, times: Sequence[tuple[str, datetime]]) -> None:
        if times:
            await self.seeded.set_event_times([i for i, _ in times], [at for _, at in times])

    async def track_at(
        self, at: datetime, event: str, user_id: str | None, properties: dict[str, Any]
    ) -> None:
        row = await self.analytics.track(
            self.session, event, user_id=user_id, properties=properties
        )
        if row is not None:
            row.created_at = at
