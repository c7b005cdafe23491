"""The order workflow's payment steps: authorise, refresh, capture, void or refund.

Each step commits on both sides of its provider call and never holds a transaction open
across one: before it, the order's check under its row lock (the fence against late
attempts, see ``OrderService.forward``); after it, the provider's answer with the
order's transition. A refund is the exception, as every refund of an order is: made and
recorded under the payment row's lock, so an order's refunds run one at a time.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, autocommit, transaction
from core.errors import Conflict
from core.settings import Settings
from integrations.payments.gateway import (
    IntentState,
    IntentStatus,
    PaymentDeclined,
    PaymentGateway,
    PaymentUnavailable,
    RefundResult,
)
from models.orders import OrderStatus, TimelineAudience
from models.payments import Payment
from services.analytics import AnalyticsRecorder
from services.order_repository import ChargeTerms
from services.orders import OrderService
from services.payments.refunds import announce_refund, refund_failure
from services.payments.repository import PaymentRepository
from services.payments.states import (
    Authorization,
    apply_decline,
    apply_state,
    idempotency_key,
)


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

    async def authorize(self, order_id: str) -> Authorization:
        """process-payment: hold the order total on the customer's card (``_authorize``).
        If the provider cannot be reached, the order's timeline says it is waiting for
        the provider (once: the workflow tries again for its budget, see
        ``OrderWorkflow._authorize_through_outages``)."""
        try:
            return await self._authorize(order_id)
        except PaymentUnavailable as exc:
            await self._waiting_for_provider(order_id, exc)
            raise

    async def _waiting_for_provider(self, order_id: str, exc: PaymentUnavailable) -> None:
        budget = self.settings.authorize_budget_seconds
        async with transaction(self.sessions) as session:
            orders = OrderService(session, self.settings, self.analytics)
            order = await orders.orders.require(order_id)
            if order.undoing_at is not None:
                return  # the order is being undone: nobody waits for the provider now
            await orders.note(
                order,
                f"waiting for the payment provider: it cannot be reached; the payment is "
                f"tried again for up to {budget:g} s, the stock held meanwhile",
                {"reason": exc.detail},
                audience=TimelineAudience.STAFF,
                key="payment-provider-unreachable",
            )

    async def _authorize(self, order_id: str) -> Authorization:
        """Hold the order total on the customer's card.

        Two provider calls and two commits, and no transaction open across a call. The
        PaymentIntent is created first (that holds nothing); then one transaction, under
        the order's row lock (so a late attempt for an order being undone stops here),
        records the payment with the intent's id. Only then is the intent confirmed, the
        call that can hold money, and a second transaction records the answer. The two
        cannot be one: whenever money can be held, the payment row must already know the
        intent, so the compensation can void it even if the confirm's answer is lost."""
        order, intent_id = await self._to_charge(order_id)
        if intent_id is None:
            created = await self.gateway.create(
                order_id=order.order_id,
                amount=order.total,
                currency=order.currency,
                payment_method=order.payment_token,
                idempotency_key=idempotency_key(order.order_id, "create"),
            )
            intent_id = created.intent_id
        # The intent the payment row records, which the compensation voids: confirm that
        # one, even if this attempt's create answered another (a concurrent attempt's).
        intent_id = await self._open(order_id, intent_id)
        try:
            state = await self.gateway.confirm(
                intent_id,
                idempotency_key=idempotency_key(order.order_id, "confirm"),
                return_url=f"{self.settings.api_base_url}/api/orders/{order.order_id}",
            )
        except PaymentDeclined as exc:
            await self._declined(order_id, exc)
            raise
        return await self._authorization(order_id, state, "authorization")

    async def _to_charge(self, order_id: str) -> tuple[ChargeTerms, str | None]:
        """What to charge for the order and its PaymentIntent id, if one was made before.
        Nothing is written; an order being undone already stops here (``OrderUndone``),
        before an intent is made for it. Autocommit: the fence's lock waits for an undo in
        flight and is let go at once, as the rollback that ended this read did, without
        the ``BEGIN`` and ``ROLLBACK`` round trips. Columns, not rows loaded by the ORM."""
        async with autocommit(self.sessions) as session:
            orders = OrderService(session, self.settings, self.analytics)
            terms = await orders.charge_terms(order_id)
            return terms, await PaymentRepository(session).intent_id(order_id)

    async def _open(self, order_id: str, intent_id: str) -> str:
        """The order's payment row with its intent's id, created on the first attempt
        (with ``payment_start``); ``OrderUndone`` once compensations began. Returns the
        intent the row records: the first one saved, whichever attempt made it.

        The payment row is locked before the order's (the order of locks, see
        ``core.db.locked``): taken after it, a later attempt held the order waiting for
        the payment row while an earlier one, recording its answer (or a webhook's
        refresh), held the payment row waiting for the order: a deadlock."""
        async with transaction(self.sessions) as session:
            payments = PaymentRepository(session)
            payment = await payments.for_order(order_id, lock=True)
            order = await OrderService(session, self.settings, self.analytics).forward(order_id)
            opened = None
            if payment is None:
                opened = await payments.open(order, self.gateway.name, intent_id)
            if opened is not None:
                # The new row's id from the INSERT itself, not read back (issue #15).
                payments.event(opened, "authorization_requested", {"amount": order.total})
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
                return intent_id
            if payment is None:
                # Made by another attempt since our look, with its intent's id (which
                # never changes): read, not locked, as the order's lock is held now.
                payment = await payments.for_order(order_id)
                assert payment is not None
            if payment.intent_id is None:  # a row from before intents were saved with it
                payment.intent_id = intent_id
                payments.save(payment)
                return intent_id
            return payment.intent_id

    async def _declined(self, order_id: str, exc: PaymentDeclined) -> None:
        async with transaction(self.sessions) as session:
            payments = PaymentRepository(session)
            payment = await payments.for_order(order_id, lock=True)
            assert payment is not None
            apply_decline(payment, str(exc.extra.get("reason") or exc.code))
            payments.save(payment)
            payments.event(payment, "authorization_declined", {"reason": exc.extra.get("reason")})

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
            await self._apply(session, payment, state, event)
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

    async def _apply(
        self, session: AsyncSession, payment: Payment, state: IntentState, event: str
    ) -> None:
        """The provider's answer onto the (locked) payment row, with ``payment.refunded``
        for any refund the row did not know of."""
        payments = PaymentRepository(session)
        newly_refunded = apply_state(payment, state)
        payments.save(payment)
        payments.event(payment, event, _state_data(state))
        if newly_refunded > 0:
            await announce_refund(session, payment, newly_refunded, {})

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
        it is marked so first, in one transaction; the other two write nothing and read in
        autocommit (the fence's lock is let go at once, as a commit of nothing did)."""
        async with (transaction if undo else autocommit)(self.sessions) as session:
            if undo is not None:
                orders = OrderService(session, self.settings, self.analytics)
                await (orders.undo_started(order_id) if undo else orders.fence(order_id))
            return await PaymentRepository(session).intent_id(order_id)

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
            # No payment row knows an intent, so none was ever confirmed (its id is
            # saved before any confirm).
            return "nothing to undo"
        state = await self.gateway.void(
            intent_id, idempotency_key=idempotency_key(order_id, "void")
        )
        if state.status is IntentStatus.CAPTURED:
            refunded = await self._refund_rest(order_id, intent_id)
            return "refunded" if refunded else "refund failed"
        await self._record(order_id, state, "voided", order_status=None)
        return "voided"

    async def _refund_rest(self, order_id: str, intent_id: str) -> bool:
        """Refund all that is still captured, as every refund of an order is made: under
        its payment row's lock, held across the provider call, with the answer recorded
        in that transaction. A staff refund (or a return's) at the same moment either
        comes first, and this refunds what it left, or finds nothing left. Made outside
        the lock, the other refund's record read the provider's total, this refund in
        it, and ours then found nothing new to announce (no ``payment.refunded``).

        Returns False when the refund failed at Stripe (its card's bank sent it back;
        a retry after a lost answer is answered with the refund as it stood when made,
        so it is read as it stands now): recorded and told as a staff refund's failure
        is (``RefundFailures.record_failed``: ``payment.refund_failed`` alerts staff and
        tells the customer), and the order's cancellation says it was not refunded."""
        async with transaction(self.sessions) as session:
            payments = PaymentRepository(session)
            payment = await payments.for_order(order_id, lock=True)
            assert payment is not None  # it knows the intent
            state = await self.gateway.retrieve(intent_id)
            if state.amount_captured <= state.amount_refunded:
                await self._apply(session, payment, state, "refunded")
                return True
            result = await self.gateway.refund(
                intent_id,
                amount=None,
                currency=payment.currency,
                idempotency_key=idempotency_key(order_id, "refund"),
            )
            failure = await refund_failure(session, self.gateway, payment, result)
            state = await self.gateway.retrieve(intent_id)
            if failure is None:
                await self._apply(session, payment, state, "refunded")
                return True
            await self._apply(session, payment, state, "refund_failed_at_stripe")
            await self._record_refund_failure(session, payment, result, failure)
            return False

    async def _record_refund_failure(
        self, session: AsyncSession, payment: Payment, result: RefundResult, failure: str
    ) -> None:
        """The failed refund ``result`` recorded once (unless its ``refund.failed`` was).
        Counted as made first, as a staff refund's is, so the failure gives back its
        amount and tells it (not 0.00, as the row never knew of it)."""
        # Imported here: ``services.refund_failures`` reads returns, whose steps refund
        # through ``services.payments`` (a cycle at import time).
        from services.refund_failures import RefundFailures

        payments = PaymentRepository(session)
        if await payments.refund_failure_recorded(payment, result.refund_id):
            return
        payment.amount_refunded = min(
            payment.amount_captured, payment.amount_refunded + result.amount
        )
        await RefundFailures(session, self.gateway).record_failed(
            payment, result.refund_id, failure, refund_amount=result.amount
        )


async def unrefunded(sessions: SessionFactory, order_id: str) -> int:
    """What the order's payment has captured and not refunded: after its undo, what a
    refund that failed at Stripe left (its cancellation email must not say refunded)."""
    async with autocommit(sessions) as session:
        return max(await PaymentRepository(session).unrefunded(order_id), 0)


def _state_data(state: IntentState) -> dict[str, Any]:
    return {
        "intentId": state.intent_id,
        "status": str(state.status),
        "amountCaptured": state.amount_captured,
        "amountRefunded": state.amount_refunded,
        "failureCode": state.failure_code,
    }
