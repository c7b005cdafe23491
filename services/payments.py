"""Payments for orders: authorise, capture, void or refund, and what webhooks tell us.

The ``payments`` row is written before the provider is called and updated with its
answer; ``payment_events`` keeps the history (our calls and the provider's webhooks,
the latter deduplicated by event id). Idempotency keys come from (order id, operation),
so a retried activity repeats the provider request instead of making a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.errors import Conflict
from core.ids import IdPrefix, new_id
from core.outbox import publish
from core.settings import Settings
from integrations.payments.gateway import (
    IntentState,
    IntentStatus,
    PaymentDeclined,
    PaymentGateway,
    WebhookEvent,
)
from models.base import utcnow
from models.orders import Order, OrderEvent, OrderStatus, Payment, PaymentEvent, PaymentStatus
from services.analytics import AnalyticsRecorder
from services.order_repository import OrderRepository
from services.orders import OrderService
from workflows.types.orders import DECISIVE_WEBHOOKS

_FROM_INTENT = {
    IntentStatus.REQUIRES_PAYMENT_METHOD: PaymentStatus.FAILED,
    IntentStatus.REQUIRES_CONFIRMATION: PaymentStatus.PENDING,
    IntentStatus.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    IntentStatus.AUTHORIZED: PaymentStatus.AUTHORIZED,
    IntentStatus.CAPTURED: PaymentStatus.CAPTURED,
    IntentStatus.CANCELED: PaymentStatus.VOIDED,
    IntentStatus.PROCESSING: PaymentStatus.PENDING,
}


# Payments only move forward: an answer that arrives late (a timed-out attempt that
# finished after all) never takes a payment back to an earlier state.
_RANK = {
    PaymentStatus.PENDING: 0,
    PaymentStatus.REQUIRES_ACTION: 1,
    PaymentStatus.FAILED: 1,
    PaymentStatus.AUTHORIZED: 2,
    PaymentStatus.CAPTURED: 3,
    PaymentStatus.PARTIALLY_REFUNDED: 4,
    PaymentStatus.REFUNDED: 5,
    PaymentStatus.VOIDED: 5,
}


class Authorization(BaseModel):
    """Where an authorisation stands (also the payment activities' result)."""

    status: IntentStatus
    next_action_url: str | None = None
    failure_code: str | None = None


def idempotency_key(order_id: str, operation: str) -> str:
    return f"{order_id}:{operation}"


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_order(self, order_id: str, *, lock: bool = False) -> Payment | None:
        query = select(Payment).where(Payment.order_id == order_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    def event(self, payment: Payment | None, type: str, data: dict[str, Any]) -> None:
        self.session.add(
            PaymentEvent(payment_id=payment.id if payment else None, type=type, data=data)
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

    async def by_intent(self, intent_id: str) -> Payment | None:
        result = await self.session.exec(select(Payment).where(Payment.intent_id == intent_id))
        return result.first()


def apply_state(payment: Payment, state: IntentState) -> int:
    """Bring the row up to what the provider says, forward only; returns how much more
    has been refunded than the row knew (to publish ``payment.refunded`` once)."""
    current = PaymentStatus(payment.status)
    captured = max(payment.amount_captured, state.amount_captured)
    refunded = max(payment.amount_refunded, state.amount_refunded)
    newly_refunded = refunded - payment.amount_refunded
    status = _FROM_INTENT[state.status]
    if refunded and captured:
        status = (
            PaymentStatus.REFUNDED if refunded >= captured else PaymentStatus.PARTIALLY_REFUNDED
        )
    payment.intent_id = payment.intent_id or state.intent_id
    payment.amount_captured, payment.amount_refunded = captured, refunded
    if _RANK[status] >= _RANK[current]:
        payment.status = status
        if status == PaymentStatus.FAILED:
            payment.failure_code = state.failure_code
    payment.updated_at = utcnow()
    return newly_refunded


class PaymentService:
    def __init__(
        self,
        sessions: SessionFactory,
        gateway: PaymentGateway,
        settings: Settings,
        analytics: AnalyticsRecorder,
    ) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.settings = settings
        self.analytics = analytics

    async def _open(self, order_id: str) -> tuple[Order, str | None]:
        """The order to charge, with its payment row (created on the first attempt)."""
        async with transaction(self.sessions) as session:
            order = await OrderService(session, self.settings, self.analytics).forward(order_id)
            created = await session.exec(
                pg_insert(Payment)
                .values(
                    id=new_id(IdPrefix.PAYMENT),
                    order_id=order.id,
                    provider=self.gateway.name,
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
            if created.first() is not None:
                payment = await PaymentRepository(session).for_order(order_id)
                PaymentRepository(session).event(
                    payment, "authorization_requested", {"amount": order.total}
                )
                await self.analytics.track(
                    session,
                    "payment_start",
                    user_id=order.user_id,
                    session_id=order.cart_id,
                    properties={
                        "orderId": order.id,
                        "amount": order.total,
                        "method": order.payment_method_type,
                    },
                )
            payment = await PaymentRepository(session).for_order(order_id)
            intent_id = payment.intent_id if payment else None
            session.expunge(order)
        return order, intent_id

    async def _record(
        self, order_id: str, state: IntentState, event: str, *, order_status: OrderStatus | None
    ) -> None:
        """The provider's answer onto the payment row (and the order's status), with a
        ``payment.refunded`` event for any refund not recorded before, in one
        transaction."""
        async with transaction(self.sessions) as session:
            payments = PaymentRepository(session)
            payment = await payments.for_order(order_id, lock=True)
            assert payment is not None
            newly_refunded = apply_state(payment, state)
            session.add(payment)
            payments.event(
                payment,
                event,
                {
                    "intentId": state.intent_id,
                    "status": str(state.status),
                    "amountCaptured": state.amount_captured,
                    "amountRefunded": state.amount_refunded,
                    "failureCode": state.failure_code,
                },
            )
            if newly_refunded > 0:
                await publish(
                    session,
                    "payment.refunded",
                    order_id,
                    {
                        "orderId": order_id,
                        "amount": newly_refunded,
                        "currency": state.currency,
                    },
                )
            if order_status is not None:
                orders = OrderService(session, self.settings, self.analytics)
                order = await orders.orders.require(order_id, lock=True)
                if order_status is OrderStatus.REQUIRES_ACTION and orders.can_move(
                    order, order_status
                ):
                    order.next_action_url = state.next_action_url
                await orders.transition(
                    order, order_status, event.replace("_", " "), data={"intentId": state.intent_id}
                )

    async def _save_intent(self, order_id: str, intent_id: str) -> None:
        async with transaction(self.sessions) as session:
            payment = await PaymentRepository(session).for_order(order_id, lock=True)
            assert payment is not None
            if payment.intent_id is None:
                payment.intent_id = intent_id
                payment.updated_at = utcnow()
                session.add(payment)

    async def authorize(self, order_id: str) -> Authorization:
        """process-payment: hold the order total on the customer's card.

        Two provider calls: create the PaymentIntent (nothing held yet) and save its id,
        then confirm it. So whenever money can be held, the payment row knows the intent
        and the compensation can void it, even if an answer was lost in between."""
        order, intent_id = await self._open(order_id)
        if intent_id is None:
            created = await self.gateway.create(
                order_id=order.id,
                amount=order.total,
                currency=order.currency,
                payment_method=order.payment_token,
                idempotency_key=idempotency_key(order.id, "create"),
            )
            intent_id = created.intent_id
            await self._save_intent(order_id, intent_id)
        # Checked again right before money can be held: a late attempt of this step
        # must not confirm what the compensation already voided (or found nothing of).
        await self._intent_id(order_id, undo=False)
        try:
            state = await self.gateway.confirm(
                intent_id,
                idempotency_key=idempotency_key(order.id, "confirm"),
                return_url=f"{self.settings.api_base_url}/api/orders/{order.id}",
            )
        except PaymentDeclined as exc:
            async with transaction(self.sessions) as session:
                row = await PaymentRepository(session).for_order(order_id, lock=True)
                assert row is not None
                if _RANK[PaymentStatus(row.status)] <= _RANK[PaymentStatus.FAILED]:
                    row.status = PaymentStatus.FAILED
                    row.failure_code = str(exc.extra.get("reason") or exc.code)
                    row.updated_at = utcnow()
                    session.add(row)
                PaymentRepository(session).event(
                    row, "authorization_declined", {"reason": exc.extra.get("reason")}
                )
            raise
        return await self._authorization(order_id, state, "authorization")

    async def _authorization(self, order_id: str, state: IntentState, event: str) -> Authorization:
        if state.status is IntentStatus.AUTHORIZED:
            await self._record(
                order_id, state, f"{event}_succeeded", order_status=OrderStatus.PAYMENT_AUTHORIZED
            )
        elif state.status is IntentStatus.REQUIRES_ACTION:
            await self._record(
                order_id,
                state,
                "customer_action_required",
                order_status=OrderStatus.REQUIRES_ACTION,
            )
        elif state.status is IntentStatus.CAPTURED:
            await self._record(order_id, state, "captured", order_status=None)
        else:
            await self._record(order_id, state, f"{event}_failed", order_status=None)
        return Authorization(
            status=state.status,
            next_action_url=state.next_action_url,
            failure_code=state.failure_code,
        )

    async def _intent_id(self, order_id: str, *, undo: bool | None = None) -> str | None:
        """The order's PaymentIntent id. With ``undo=False`` (a forward call) the order
        must not be being undone (``OrderUndone``); with ``undo=True`` (the compensation)
        it is marked so first. One transaction either way."""
        async with transaction(self.sessions) as session:
            if undo is not None:
                orders = OrderService(session, self.settings, self.analytics)
                await (orders.undo_started(order_id) if undo else orders.forward(order_id))
            payment = await PaymentRepository(session).for_order(order_id)
            return payment.intent_id if payment else None

    async def refresh(self, order_id: str) -> Authorization:
        """Ask the provider where the payment stands (after a webhook, or a wait's end)."""
        intent_id = await self._intent_id(order_id)
        if intent_id is None:
            return Authorization(
                status=IntentStatus.REQUIRES_PAYMENT_METHOD, failure_code="no_payment"
            )
        state = await self.gateway.retrieve(intent_id)
        return await self._authorization(order_id, state, "authentication")

    async def capture(self, order_id: str) -> IntentState:
        intent_id = await self._intent_id(order_id, undo=False)
        if intent_id is None:
            raise Conflict(f"order {order_id} has no authorised payment", code="payment_missing")
        state = await self.gateway.capture(
            intent_id, idempotency_key=idempotency_key(order_id, "capture")
        )
        await self._record(order_id, state, "captured", order_status=None)
        return state

    async def void_or_refund(self, order_id: str) -> str:
        """The payment step's compensation: release a hold, or refund what was captured.
        Idempotent; returns what it did."""
        intent_id = await self._intent_id(order_id, undo=True)
        if intent_id is None:
            # No PaymentIntent was ever created (its id is saved before any confirm).
            return "nothing to undo"
        state = await self.gateway.void(
            intent_id, idempotency_key=idempotency_key(order_id, "void")
        )
        if state.status is IntentStatus.CAPTURED:
            if state.amount_captured > state.amount_refunded:
                await self.gateway.refund(
                    intent_id, amount=None, idempotency_key=idempotency_key(order_id, "refund")
                )
                state = await self.gateway.retrieve(intent_id)
            await self._record(order_id, state, "refunded", order_status=None)
            return "refunded"
        await self._record(order_id, state, "voided", order_status=None)
        return "voided"


class NotRefundable(Conflict):
    code = "payment_not_refundable"
    title = "Nothing captured is left to refund"


@dataclass(frozen=True)
class RefundOutcome:
    refund_id: str
    amount: int
    currency: str


async def refund(
    session: AsyncSession,
    gateway: PaymentGateway,
    order: Order,
    *,
    amount: int | None,
    reason: str | None,
    staff_id: str,
) -> RefundOutcome:
    """A staff refund of a captured payment, in full (``amount=None``) or in part.

    The payment row stays locked during the provider call, so refunds of one order run
    one at a time; the provider key counts this order's refunds (``ord_…:refund-2``), so
    a retry after a lost answer repeats that refund instead of making another."""
    payments = PaymentRepository(session)
    payment = await payments.for_order(order.id, lock=True)
    left = payment.amount_captured - payment.amount_refunded if payment else 0
    if payment is None or payment.intent_id is None or left <= 0:
        raise NotRefundable(f"order {order.id} has no captured amount left to refund")
    if amount is not None and amount > left:
        raise NotRefundable(f"at most {left} can still be refunded", refundable=left)
    done = await session.exec(
        select(PaymentEvent.id).where(
            PaymentEvent.payment_id == payment.id, PaymentEvent.type == "refunded"
        )
    )
    key = idempotency_key(order.id, f"refund-{len(done.all()) + 1}")
    result = await gateway.refund(payment.intent_id, amount=amount, idempotency_key=key)
    apply_state(payment, await gateway.retrieve(payment.intent_id))
    session.add(payment)
    payments.event(
        payment,
        "refunded",
        {"refundId": result.refund_id, "amount": result.amount, "reason": reason, "by": staff_id},
    )
    await publish(
        session,
        "payment.refunded",
        order.id,
        {
            "orderId": order.id,
            "amount": result.amount,
            "currency": payment.currency,
            "reason": reason,
        },
    )
    session.add(
        OrderEvent(
            order_id=order.id,
            status=order.status,
            message=f"refunded {result.amount} {payment.currency}",
            data={"refundId": result.refund_id, "reason": reason},
        )
    )
    await session.flush()
    return RefundOutcome(result.refund_id, result.amount, payment.currency)


@dataclass(frozen=True)
class WebhookOutcome:
    duplicate: bool = False
    # The order whose workflow may be waiting for this event (at the payment step).
    wake_order_id: str | None = None


class WebhookService:
    """Verified provider events: recorded once, applied to the payment row."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.payments = PaymentRepository(session)

    async def receive(self, event: WebhookEvent) -> WebhookOutcome:
        """Record a payment event once. The payment's status is refreshed by the workflow
        (which asks the provider), not taken from the webhook's possibly stale copy."""
        if event.intent_id is None:
            return WebhookOutcome()  # not about a payment
        payment = await self.payments.by_intent(event.intent_id)
        if not await self.payments.webhook_seen_first_time(
            event.event_id,
            event.type,
            {"intentId": event.intent_id, "status": event.intent_status},
            payment.id if payment else None,
        ):
            return WebhookOutcome(duplicate=True)
        if event.order_id is None or event.type not in DECISIVE_WEBHOOKS:
            return WebhookOutcome()
        # Only an order at the payment step can be waiting for the customer (3-D Secure);
        # the others' workflows learn where the payment stands from the provider.
        order = await OrderRepository(self.session).get(event.order_id)
        if order is None or order.status not in (OrderStatus.RESERVED, OrderStatus.REQUIRES_ACTION):
            return WebhookOutcome()
        return WebhookOutcome(wake_order_id=order.id)
