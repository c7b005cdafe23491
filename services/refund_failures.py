"""A refund Stripe could not complete (``refund.failed``): the card's bank sent it back
(a closed or expired card), days after Stripe answered ``succeeded``. Its money is ours
again and the customer has not got it.

The failure is surfaced where staff look and made refundable again: the payment row's
refunded amount comes down to what Stripe still refunds (so a new staff refund may take
it), a ``refund_failed`` payment event and a timeline entry say which refund and why, and
a return whose refund (or settlement) it was goes back to ``received`` with its
``refundError`` set, for staff to settle (``ReturnSteps.settle``, under a new key).

And it is told: ``payment.refund_failed`` (the order's), published in the same
transaction, reaches staff (an alert: settle the return, or refund again), the customer
(a notification and an email), webhook endpoints, and the analytics' refunds (counted
back at the hour it failed).

Until then the failure was never read: the payment stayed ``refunded``, the return
``closed``, and a staff refund for the money was refused as more than was left.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.money import Money
from core.outbox import publish
from integrations.payments.gateway import PaymentGateway, WebhookEvent
from models.base import utcnow
from models.orders import TimelineAudience
from models.payments import Payment, PaymentStatus
from models.returns import ReturnRequest, ReturnStatus
from services.order_repository import OrderRepository
from services.payments.repository import PaymentRepository
from services.payments.states import refund_balance
from services.returns.errors import failure_note
from services.returns.repository import ReturnRepository


class RefundFailures:
    def __init__(self, session: AsyncSession, gateway: PaymentGateway) -> None:
        self.session = session
        self.gateway = gateway
        self.payments = PaymentRepository(session)
        self.returns = ReturnRepository(session)

    async def record(self, event: WebhookEvent) -> bool:
        """Record that the refund ``event`` is about failed, once per refund, if Stripe
        says it moves no money (the webhook is a claim; Stripe's refunds are the truth).
        Returns whether it was recorded now. Locks as refunds do (``core.db.locked``):
        the return's row, then the payment's."""
        if event.refund_id is None or event.intent_id is None:
            return False
        request = await self.returns.by_refund(event.refund_id, lock=True)
        payment = await self.payments.by_intent(event.intent_id, lock=True)
        if payment is None:
            return False
        if request is None:
            # A return's refund recorded while we waited for the payment's lock (it was
            # made, and failed, before its record committed): its return is read now. Its
            # row is locked after the payment's, against the order of locks, but whoever
            # holds it now waits for no payment (its refund is recorded: ``_refund``
            # returns early, ``settle`` refuses a return that is not ``received``).
            request = await self.returns.by_refund(event.refund_id, lock=True)
        return await self.record_failed(
            payment, event.refund_id, event.failure_reason or "unknown", request=request
        )

    async def record_failed(
        self,
        payment: Payment,
        refund_id: str,
        reason: str,
        *,
        request: ReturnRequest | None = None,
        origin: dict[str, str] | None = None,
        refund_amount: int | None = None,
    ) -> bool:
        """Record, once, that the refund ``refund_id`` of the (locked) ``payment`` failed,
        if Stripe says it moves no money: the webhook's, or a refund's retry that Stripe
        answered with that refund as it stood when made (``services.payments.refunds``),
        whichever comes first. ``request`` is the (locked) return it refunded, reopened;
        ``origin`` says whose it was when that return is not at hand. ``refund_amount``:
        the refund's own amount, what the customer and staff are told did not arrive
        (asked of Stripe when not given); the event's ``amount`` is what the payment's
        refunded amount comes down by, never more than that (another refund that failed
        with it gives back its own, in its own event), and 0 for a refund never counted
        (its answer lost, the retry answered with it failed). Returns whether it was
        recorded now."""
        if await self.payments.refund_failure_recorded(payment, refund_id):
            return False
        moving = await self.gateway.refunds(str(payment.intent_id))
        if any(r.refund_id == refund_id for r in moving):
            return False  # not failed (a refund that failed never succeeds again)
        if refund_amount is None:
            refund_amount = (await self.gateway.retrieve_refund(refund_id)).amount
        # The row's refunded amount is the most Stripe's refunds ever added up to: what
        # it is above their total now is what failed, of this refund and of any other
        # that failed with it and is not recorded yet. This one gives back the money of
        # its own that the row counts: as its ``refunded`` event announced it; if none
        # did (its answer was lost), what is left once every other failed refund that the
        # row counts by id has its own back. The other's record gives back the rest.
        counted = await self.payments.counted_refunds(payment)
        still_moving = {r.refund_id for r in moving}
        others = sum(
            amount
            for other, amount in counted.items()
            if other != refund_id and other not in still_moving
        )
        reversed_amount = _give_back(
            payment,
            sum(r.amount for r in moving),
            counted.get(refund_id, refund_amount),
            others if refund_id not in counted else 0,
        )
        if request is not None:
            origin = {"returnId": request.id}
        origin = origin or {}
        self.payments.event(
            payment,
            "refund_failed",
            {"refundId": refund_id, "reversed": reversed_amount, "reason": reason, **origin},
        )
        order = await OrderRepository(self.session).require(payment.order_id)
        self.payments.order_timeline(
            order,
            f"refund {refund_id} failed at Stripe ({reason}): "
            f"{Money(reversed_amount, payment.currency).format()} not refunded, refundable again",
            {"refundId": refund_id, "reason": reason, **origin},
            # For staff to settle; the customer hears of the refund once it is made.
            audience=TimelineAudience.STAFF,
        )
        if request is not None:
            _reopen(request, refund_id, reason)
            self.returns.stage(request)
        # Once per refund, as the payment event above: both are under the payment's lock.
        await publish(
            self.session,
            EventType.PAYMENT_REFUND_FAILED,
            payment.order_id,
            {
                "orderId": payment.order_id,
                "refundId": refund_id,
                "amount": reversed_amount,
                "refundAmount": refund_amount,
                "currency": payment.currency,
                "reason": reason,
                **origin,
                **refund_balance(payment),
            },
        )
        return True


def _give_back(payment: Payment, refunded_now: int, own: int, others: int) -> int:
    """Bring the row's refunded amount down towards ``refunded_now`` (Stripe's moving
    refunds) by at most ``own`` (what the row counts of the failed refund), leaving
    ``others`` (what it counts of other failed refunds not recorded yet) to theirs, its
    status with it; returns by how much.

    Two refunds of one payment bouncing close together are both out of Stripe's total
    when the first is recorded: brought down to it, the first event gave back both
    amounts and the second 0, so the analytics counted one bounce (a failure with
    ``amount`` 0 takes no refund off their count) and the lifetime value entered one.
    And a refund whose answer was lost (never counted) bouncing with a counted one, its
    ``refund.failed`` first, took the counted one's money: the total was right, each
    event's amount wrong (the lifetime value's ``refund_failed`` entries with it)."""
    excess = max(payment.amount_refunded - refunded_now - others, 0)
    reversed_amount = min(excess, own)
    if reversed_amount == 0:
        return 0
    payment.amount_refunded -= reversed_amount
    if payment.amount_refunded <= 0:
        payment.status = PaymentStatus.CAPTURED
    elif payment.amount_refunded < payment.amount_captured:
        payment.status = PaymentStatus.PARTIALLY_REFUNDED
    payment.updated_at = utcnow()
    return reversed_amount


def _reopen(request: ReturnRequest, refund_id: str, reason: str) -> None:
    """The return whose refund failed is owed its money again: ``received``, with the
    failure as its ``refundError``, for staff to settle. Its ``refund_id`` stays the
    failed refund's: the settlement's key names it, so it is a new refund at Stripe."""
    if request.status not in (ReturnStatus.REFUNDED, ReturnStatus.CLOSED):
        return
    request.status = ReturnStatus.RECEIVED
    request.refund_error = failure_note(refund_id, reason)
    request.settlement_note = None
    request.refunded_at = request.closed_at = None
    request.updated_at = utcnow()
