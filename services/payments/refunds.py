"""Staff refunds of a captured payment, in full or in part."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from core.events import EventType
from core.money import Money
from core.outbox import publish
from integrations.payments.gateway import PaymentGateway, PaymentRejected, RefundResult
from models.orders import Order, TimelineAudience
from models.payments import Payment
from services.payments.repository import PaymentRepository
from services.payments.states import apply_state, idempotency_key, refund_balance


class NotRefundable(Conflict):
    code = "payment_not_refundable"
    title = "Nothing captured is left to refund"


class RefundFailed(NotRefundable):
    """The refund was made, then failed at Stripe (its card's bank sent it back): it
    moved no money. Raised by its caller once that is recorded (a return's refund, for
    staff to settle: the same type, so the return's workflow waits for them as for a
    refusal)."""

    title = "The refund failed at the payment provider"


# The refund's metadata entry that holds its idempotency key.
KEY_METADATA = "idempotency_key"
# Stripe's codes for a refund of more than the charge has left.
_NOTHING_LEFT = ("amount_too_large", "charge_already_refunded")


@dataclass(frozen=True)
class RefundOutcome:
    refund_id: str
    amount: int
    currency: str
    # Set when the refund failed at Stripe (its ``failure_reason``): it moved no money.
    # A retry after a lost answer is answered with the refund as it stood when made
    # (``succeeded``), though its card's bank has sent it back since.
    failure: str | None = None


async def refund(
    session: AsyncSession,
    gateway: PaymentGateway,
    order: Order,
    *,
    amount: int | None,
    reason: str | None,
    staff_id: str | None,
    key: str | None = None,
    source: dict[str, Any] | None = None,
    request_key: str | None = None,
) -> RefundOutcome:
    """A staff refund of a captured payment, in full (``amount=None``) or in part.

    The payment row stays locked during the provider call, so refunds of one order run
    one at a time. The provider key comes from the request's ``Idempotency-Key``
    (``request_key``, scoped to the staff member) when it has one: its retry repeats the
    refund, another key makes a new one. Without it the key counts this order's staff
    refunds made without one (``ord_…:refund-2``), so a retry after a lost answer repeats
    that refund instead of making another, whatever other refunds were recorded
    meanwhile (and so does a new refund asked before the lost one is recorded). A refund
    owed for something else brings its own ``key`` (a return: ``return:{id}``) and says
    where it came from in ``source`` (``{"returnId": …}``), carried by its payment event,
    its ``payment.refunded`` and its timeline entry.

    Money the provider has refunded that no ``payment.refunded`` announced (an earlier
    refund whose answer was lost, then rolled back) is announced with this refund, in an
    event of its own (``unrecorded``, no reason; a return's with its ``returnId``): the
    events add up to the refunded balance whether or not that refund is ever retried,
    and its retry announces nothing.

    A refund that failed at Stripe (``refund.failed``: after a lost answer, its retry is
    answered with the refund as it stood when made) is recorded as made (its key is
    spent) and as failed (``RefundFailures.record_failed``, once, whether its webhook
    came first or comes later): nothing announced as refunded, the outcome's
    ``failure`` set."""
    payments = PaymentRepository(session)
    payment = await payments.for_order(order.id, lock=True)
    if payment is None or payment.intent_id is None or payment.amount_captured <= 0:
        raise NotRefundable(f"order {order.id} has no captured amount to refund")
    left = payment.amount_captured - payment.amount_refunded
    # A key of this refund alone (a return's, a request's) may be a retry whose first
    # attempt reached Stripe, its answer lost: ``left`` counts that money once any refund
    # is recorded after it, so the retry would look like too much. It goes to Stripe with
    # the same parameters: Stripe replays the first answer, or (never made) refuses it.
    # The count key is shared with the next new refund: refused, that one would find
    # Stripe's stored refusal, so its checks stay here.
    if key is None and request_key is None:
        if left <= 0:
            raise NotRefundable(f"order {order.id} has no captured amount left to refund")
        if amount is not None and amount > left:
            raise NotRefundable(f"at most {left} can still be refunded", refundable=left)
    # A request's key is hashed with the staff member's id: the API keeps keys per caller,
    # Stripe's keys must fit 255 characters.
    requested = (
        hashlib.sha256(f"{staff_id}\n{request_key}".encode()).hexdigest()[:32]
        if request_key is not None
        else None
    )
    if key is None and requested is not None:
        key = idempotency_key(order.id, f"refund:{requested}")
    elif key is None:
        # Counted over staff refunds without a request key only: a return's refund (or a
        # keyed staff refund) recorded between a lost answer and its retry must not move
        # the retry to a new key (a second refund).
        done = await payments.count_staff_refunds(payment)
        key = idempotency_key(order.id, f"refund-{done + 1}")
    origin = source or {}
    # Stripe keeps the return's id on its refund: another refund that finds this one's
    # money unannounced (its answer lost) can say whose it is (``_announce_unrecorded``).
    # And its key: a retry after Stripe forgot the key finds it (``_made_under``).
    metadata = {KEY_METADATA: key}
    if origin.get("returnId"):
        metadata["return_id"] = str(origin["returnId"])
    try:
        result = await _made_under(gateway, payment.intent_id, metadata, amount) or (
            await gateway.refund(
                payment.intent_id,
                amount=amount,
                currency=payment.currency,
                idempotency_key=key,
                metadata=metadata,
            )
        )
    except PaymentRejected as exc:
        if exc.extra.get("reason") not in _NOTHING_LEFT:
            raise
        raise NotRefundable(
            f"Stripe refused the refund: at most {max(left, 0)} can still be refunded",
            refundable=max(left, 0),
        ) from exc
    # Where the refund stands now, not the (replayed) answer: it may have failed since.
    failure = await refund_failure(session, gateway, payment, result)
    announced = payment.amount_refunded
    recorded = await payments.refund_recorded(payment, result.refund_id)
    newly_refunded = apply_state(payment, await gateway.retrieve(payment.intent_id))
    payments.save(payment)
    # Every move of the row's refunded amount is announced in its transaction (here or
    # by PaymentService._apply), so ``announced`` is what payment.refunded events have
    # said and ``newly_refunded`` what none has: this refund, unless it was recorded
    # before, and any earlier refund whose answer was lost (Stripe's total has it, no
    # event did). The lost one is announced now, in an event of its own; its retry finds
    # nothing new and announces nothing.
    own = 0 if recorded or failure is not None else min(result.amount, newly_refunded)
    unrecorded = newly_refunded - own
    if not recorded:
        payments.event(
            payment,
            "refunded",
            {
                "refundId": result.refund_id,
                "amount": result.amount,
                "announced": own,
                "reason": reason,
                "by": staff_id,
                **({"requestKey": requested} if requested is not None else {}),
                **origin,
            },
        )
    if unrecorded > 0:
        await _announce_unrecorded(
            session, gateway, payment, order, unrecorded, announced, made=result.refund_id
        )
    if own > 0:
        await announce_refund(session, payment, own, {"reason": reason, **origin})
        payments.order_timeline(
            order,
            f"refunded {Money(own, payment.currency).format()}",
            {"refundId": result.refund_id, "reason": reason, **origin},
            audience=TimelineAudience.CUSTOMER,
        )
    if failure is not None:
        # Recorded as made above (its key spent: the next staff refund counts it), and as
        # failed here, unless its ``refund.failed`` was recorded first.
        # Imported here: ``services.refund_failures`` reads returns, whose steps refund
        # through this module (a cycle at import time).
        from services.refund_failures import RefundFailures

        await RefundFailures(session, gateway).record_failed(
            payment, result.refund_id, failure, origin=origin, refund_amount=result.amount
        )
    await session.flush()
    return RefundOutcome(result.refund_id, result.amount, payment.currency, failure=failure)


async def refund_failure(
    session: AsyncSession, gateway: PaymentGateway, payment: Payment, result: RefundResult
) -> str | None:
    """Why the refund ``result`` failed, if it did: its ``refund.failed`` recorded, or
    Stripe's refund as it stands now (the answer may be a replay of how it stood)."""
    reason = await PaymentRepository(session).refund_failure_reason(payment, result.refund_id)
    if reason is not None:
        return reason
    current = result if result.failed else await gateway.retrieve_refund(result.refund_id)
    return (current.failure_reason or "unknown") if current.failed else None


async def _made_under(
    gateway: PaymentGateway, intent_id: str, metadata: Mapping[str, str], amount: int | None
) -> RefundResult | None:
    """The refund Stripe already made under this refund's key (kept on it), if any: an
    attempt whose answer was lost, retried after Stripe forgot the key (24 hours: a day's
    outage, or staff sending a 503'd refund again the next day), is answered with it
    instead of making a second refund. A return's refund made before refunds carried
    their key is known by the return's id and its amount (a return has at most one
    refund that moves money: a failed one does not, ``gateway.refunds`` leaves it out)."""
    if amount is None:
        # All that is left: asked again, Stripe finds nothing left (409), never refunds
        # twice. (Under a counted key shared with another refund, Stripe's answer to
        # other parameters stands: 502, nothing made.)
        return None
    return_id = metadata.get("return_id")
    for found in await gateway.refunds(intent_id):
        if found.amount != amount:
            continue
        if found.metadata.get(KEY_METADATA) == metadata[KEY_METADATA]:
            return found
        if (
            return_id is not None
            and KEY_METADATA not in found.metadata
            and found.metadata.get("return_id") == return_id
        ):
            return found
    return None


async def announce_refund(
    session: AsyncSession,
    payment: Payment,
    amount: int,
    data: dict[str, Any],
    *,
    refunded: int | None = None,
) -> None:
    """``payment.refunded`` for ``amount`` of the order's money, with ``data`` and the
    balance as of it (``refund_balance``), in the caller's transaction."""
    await publish(
        session,
        EventType.PAYMENT_REFUNDED,
        payment.order_id,
        {
            "orderId": payment.order_id,
            "amount": amount,
            "currency": payment.currency,
            **data,
            **refund_balance(payment, refunded=refunded),
        },
    )


async def _announce_unrecorded(
    session: AsyncSession,
    gateway: PaymentGateway,
    payment: Payment,
    order: Order,
    unrecorded: int,
    announced: int,
    *,
    made: str,
) -> None:
    """Announce ``unrecorded`` money Stripe has refunded that no event announced (after
    ``announced``): first each return's refund among Stripe's that none recorded (its
    ``return_id`` kept on it), recorded now under its refund id with the return's id, so
    the customer hears of it once, from the return's own email, and the return's retry
    finds it recorded; the rest (refunds without a return's id) in one event.

    Announced without the return's id, the return's lost refund had the plain refund
    email, and its retry the return's: two emails about one refund."""
    payments = PaymentRepository(session)
    for found in await gateway.refunds(str(payment.intent_id)):
        return_id = found.metadata.get("return_id")
        if (
            found.refund_id == made
            or not return_id
            or found.amount > unrecorded
            or await payments.refund_recorded(payment, found.refund_id)
        ):
            continue
        origin = {"returnId": return_id}
        payments.event(
            payment,
            "refunded",
            {
                "refundId": found.refund_id,
                "amount": found.amount,
                "announced": found.amount,
                "reason": None,
                "unrecorded": True,
                **origin,
            },
        )
        announced += found.amount
        unrecorded -= found.amount
        await _announce_lost(session, payment, order, found.amount, announced, origin)
    if unrecorded > 0:
        await _announce_lost(session, payment, order, unrecorded, announced + unrecorded, {})


async def _announce_lost(
    session: AsyncSession,
    payment: Payment,
    order: Order,
    amount: int,
    refunded: int,
    origin: dict[str, Any],
) -> None:
    """``payment.refunded`` and the timeline entry of a refund whose answer was lost."""
    await announce_refund(
        session,
        payment,
        amount,
        {"reason": None, "unrecorded": True, **origin},
        refunded=refunded,
    )
    PaymentRepository(session).order_timeline(
        order,
        f"refunded {Money(amount, payment.currency).format()} (a refund whose answer was lost)",
        {"unrecorded": True, **origin},
        # Money the customer got back, however its answer was lost.
        audience=TimelineAudience.CUSTOMER,
    )
