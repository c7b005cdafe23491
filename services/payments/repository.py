"""All payment SQL: the ``payments`` row of each order and its ``payment_events``."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Select as CoreSelect
from sqlalchemy import bindparam, func
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from core.db import first_row, locked
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.orders import Order, OrderEvent, TimelineAudience
from models.payments import Payment, PaymentEvent, PaymentStatus


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    @cache
    def _payment_statement(lock: bool) -> SelectOfScalar[Payment]:
        """The order's payment row, read several times an order: built once (issue #15,
        as ``OrderRepository``'s order by id)."""
        query = select(Payment).where(Payment.order_id == bindparam("p_order_id"))
        return locked(query) if lock else query

    async def for_order(self, order_id: str, *, lock: bool = False) -> Payment | None:
        return (
            await self.session.exec(self._payment_statement(lock), params={"p_order_id": order_id})
        ).first()

    @staticmethod
    @cache
    def _intent_statement() -> CoreSelect[str | None]:
        payments = Payment.__table__  # type: ignore[attr-defined]
        return core_select(payments.c.intent_id).where(
            payments.c.order_id == bindparam("p_order_id")
        )

    async def intent_id(self, order_id: str) -> str | None:
        """The PaymentIntent id the order's payment records (None: no payment row, or one
        that knows no intent), without loading the payment: each of an order's payment
        steps reads it first. A Core statement built once on the session's connection,
        without the ORM's execute path (issue #15); nothing staged is flushed first."""
        found = await first_row(self.session, self._intent_statement(), {"p_order_id": order_id})
        return None if found is None else found[0]

    async def open(self, order: Order, provider: str, intent_id: str) -> str | None:
        """The order's payment row, pending, once: its id, or None if it existed already."""
        created = await self.session.exec(
            pg_insert(Payment)
            .values(
                id=new_id(IdPrefix.PAYMENT),
                order_id=order.id,
                provider=provider,
                intent_id=intent_id,
                amount=order.total,
                currency=order.currency,
                status=PaymentStatus.PENDING,
                amount_captured=0,
                amount_refunded=0,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(col(Payment.id))
        )
        row = created.first()
        return None if row is None else str(row[0])

    def save(self, payment: Payment) -> None:
        self.session.add(payment)

    async def unrefunded(self, order_id: str) -> int:
        """What the order's payment has captured and not refunded (0 without one)."""
        payment = await self.for_order(order_id)
        return payment.amount_captured - payment.amount_refunded if payment else 0

    def event(self, payment: Payment | str | None, type: str, data: dict[str, Any]) -> None:
        """A ``payment_events`` row of ``payment`` (the row, or its id)."""
        payment_id = payment.id if isinstance(payment, Payment) else payment
        self.session.add(PaymentEvent(payment_id=payment_id, type=type, data=data))

    async def count_staff_refunds(self, payment: Payment) -> int:
        """The staff refunds recorded for ``payment`` whose provider key counts them: its
        ``refunded`` events with a provider refund id, no ``returnId`` and no
        ``requestKey`` (a return's refund, the compensation's and a staff refund asked
        with an ``Idempotency-Key`` have keys of their own, so they do not count)."""
        data = col(PaymentEvent.data)
        return await self._refunded_events(
            payment,
            data.op("?", is_comparison=True)("refundId"),
            ~data.op("?", is_comparison=True)("returnId"),
            ~data.op("?", is_comparison=True)("requestKey"),
        )

    async def refund_recorded(self, payment: Payment, refund_id: str) -> bool:
        """Whether the provider's refund ``refund_id`` has a ``refunded`` event already
        (its money is in the row's refunded amount, and was announced with it)."""
        found = await self._refunded_events(
            payment, col(PaymentEvent.data)["refundId"].astext == refund_id
        )
        return found > 0

    async def refunded_returns(self, payment: Payment) -> set[str]:
        """The returns whose refund of ``payment`` is recorded (a ``refunded`` event with
        their ``returnId``: its money is in the row's refunded amount), unless that
        refund failed since (a ``refund_failed`` event of its refund id)."""
        data = col(PaymentEvent.data)
        failed = select(data["refundId"].astext).where(
            PaymentEvent.payment_id == payment.id, PaymentEvent.type == "refund_failed"
        )
        result = await self.session.exec(
            select(data["returnId"].astext).where(
                PaymentEvent.payment_id == payment.id,
                PaymentEvent.type == "refunded",
                data.op("?", is_comparison=True)("returnId"),
                data["refundId"].astext.not_in(failed),
            )
        )
        return {str(r) for r in result.all() if r is not None}

    async def counted_refunds(self, payment: Payment) -> dict[str, int]:
        """The provider refunds of ``payment`` whose money the row's refunded amount counts
        by their id, unless they failed since: each one's ``refunded`` event and what it
        announced (``announced``; the whole ``amount`` in events from before it was
        written). A refund whose answer was lost and that no later refund recorded by id
        (its money announced with no refund id, or never) is not among them."""
        data = col(PaymentEvent.data)
        failed = select(data["refundId"].astext).where(
            PaymentEvent.payment_id == payment.id, PaymentEvent.type == "refund_failed"
        )
        result = await self.session.exec(
            select(data["refundId"].astext, data["announced"].astext, data["amount"].astext).where(
                PaymentEvent.payment_id == payment.id,
                PaymentEvent.type == "refunded",
                data.op("?", is_comparison=True)("refundId"),
                data["refundId"].astext.not_in(failed),
            )
        )
        counted: dict[str, int] = {}
        for refund_id, announced, amount in result.all():
            counted[str(refund_id)] = int(announced if announced is not None else amount or 0)
        return counted

    async def refund_failure_recorded(self, payment: Payment, refund_id: str) -> bool:
        """Whether the provider's refund ``refund_id`` has a ``refund_failed`` event."""
        return await self.refund_failure_reason(payment, refund_id) is not None

    async def refund_failure_reason(self, payment: Payment, refund_id: str) -> str | None:
        """Why the provider's refund ``refund_id`` failed, if a ``refund_failed`` event
        says it did."""
        data = col(PaymentEvent.data)
        result = await self.session.exec(
            select(data["reason"].astext).where(
                PaymentEvent.payment_id == payment.id,
                PaymentEvent.type == "refund_failed",
                data["refundId"].astext == refund_id,
            )
        )
        row = result.first()
        return None if row is None else str(row or "unknown")

    async def _refunded_events(self, payment: Payment, *conditions: Any) -> int:
        """How many of ``payment``'s ``refunded`` events meet ``conditions``."""
        result = await self.session.exec(
            select(func.count())
            .select_from(PaymentEvent)
            .where(
                PaymentEvent.payment_id == payment.id,
                PaymentEvent.type == "refunded",
                *conditions,
            )
        )
        return int(result.one())

    def order_timeline(
        self, order: Order, message: str, data: dict[str, Any], *, audience: TimelineAudience
    ) -> None:
        """A payment entry on the order's timeline for ``audience``, at the order's
        current status."""
        self.session.add(
            OrderEvent(
                order_id=order.id,
                status=order.status,
                message=message,
                data=data,
                audience=audience,
            )
        )

    async def webhook_seen_first_time(
        self, event_id: str, type: str, data: dict[str, Any], payment_id: str | None
    ) -> bool:
        """Record a provider event; False when this event id was recorded before."""
        result = await self.session.exec(
            pg_insert(PaymentEvent)
            .values(
                id=new_id(IdPrefix.PAYMENT_EVENT),
                payment_id=payment_id,
                provider_event_id=event_id,
                type=type,
                data=data,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["provider_event_id"])
            .returning(col(PaymentEvent.id))
        )
        return result.first() is not None

    async def by_intent(self, intent_id: str, *, lock: bool = False) -> Payment | None:
        query = select(Payment).where(Payment.intent_id == intent_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()
