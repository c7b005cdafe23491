"""``ReturnWorkflow``'s steps after the goods are back: receive (restock), refund and
close (the label's steps are in ``labels``), and the read of the return as stored. Each
step moves the return forward only from the status it expects, in one transaction with
its event, so a repeated step changes nothing; the refund is keyed at the provider by
``return:{id}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.money import Money
from core.outbox import publish
from integrations.payments.gateway import PaymentGateway
from models.base import utcnow
from models.inventory import MAX_STOCK
from models.orders import TimelineAudience
from models.payments import Payment
from models.returns import SHOP_FAULT_REASONS, ReturnLine, ReturnRequest, ReturnStatus
from services import payments
from services.inventory.stock import StockService, not_put_back_note
from services.order_repository import OrderRepository
from services.payments.refunds import NotRefundable, RefundFailed
from services.payments.repository import PaymentRepository
from services.returns.errors import (
    InvalidReceipt,
    ReturnNotSettleable,
    SettlementTooLarge,
    failure_note,
)
from services.returns.refunds import OrderAmounts, RefundBreakdown, return_refund
from services.returns.repository import ReturnRepository
from workflows.types.returns import ReceivedLine, StoredReturn

# The weight a returned unit is booked at (the carrier needs one; ours are estimates).
UNIT_WEIGHT_OZ = 16.0


def refund_key(return_id: str) -> str:
    """The provider's idempotency key of a return's refund: one refund per return."""
    return f"return:{return_id}"


def settlement_key(return_id: str, amount: int, *, failed: str | None = None) -> str:
    """The provider's key of the refund staff make when they settle a refused one: a
    retry of the same amount repeats it. The amount is part of it because Stripe keeps a
    refusal under its key: a settlement refused as more than is left must not make the
    next, smaller one be refused as a changed request. After a refund that failed at
    Stripe (``refund.failed``), that refund's id (``failed``) is part of it too: under
    the key that made it, Stripe would answer with the failed refund again."""
    key = f"{refund_key(return_id)}:settlement:{amount}"
    return key if failed is None else f"{key}:after:{failed}"


class ReturnSteps:
    def __init__(
        self,
        sessions: SessionFactory,
        gateway: PaymentGateway,
    ) -> None:
        self._sessions = sessions
        self._gateway = gateway

    async def stored(self, return_id: str) -> StoredReturn:
        """The return as its row holds it; changes nothing."""
        async with self._sessions() as session:
            request = await ReturnRepository(session).require(return_id)
        return StoredReturn(
            status=ReturnStatus(request.status),
            approved_at=request.approved_at,
            label_issued=request.label_url is not None,
            ship_by=request.ship_by,
            received_at=request.received_at,
            refund_amount=request.refund_amount,
            refunded_at=request.refunded_at,
            refund_error=request.refund_error,
        )

    # --- receipt, restock, refund -----------------------------------------------------

    async def receive(
        self, return_id: str, received: list[ReceivedLine], *, staff_id: str | None
    ) -> int | None:
        """Record what came back, restock the undamaged units (ledger reason ``return``,
        once per return line) and fix the refund. Returns the refund amount."""
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status != ReturnStatus.APPROVED:
                return request.refund_amount
            # The order's refunds are decided one at a time, under its payment row's lock
            # (the one its refunds are made under), taken before anything is counted: a
            # return received at the same moment has then fixed its refund and is counted
            # (its shipping too), not missed. Taken before the restock, so no stock row
            # waits behind a staff refund's provider call. No payment row: nothing was
            # captured, so every amount is 0, but the breakdown still says what is owed
            # (the shipping once): the order's row serialises the receipts instead (after
            # the payment row's place in the order of locks, see ``core.db.locked``).
            payment = await PaymentRepository(session).for_order(request.order_id, lock=True)
            if payment is None:
                await OrderRepository(session).require(request.order_id, lock=True)
            lines = {ln.id: ln for ln in await returns.lines([return_id])}
            counted = {r.return_line_id: r for r in received}
            if unknown := sorted(set(counted) - set(lines)):
                raise InvalidReceipt(f"not lines of this return: {', '.join(unknown)}")
            for line in lines.values():
                got = counted.get(line.id)
                line.received_quantity = got.received_quantity if got else 0
                line.damaged_quantity = got.damaged_quantity if got else 0
                if line.received_quantity + line.damaged_quantity > line.quantity:
                    raise InvalidReceipt(f"line {line.id}: more units than the return holds")
                returns.stage(line)
            not_put_back = await self._restock(session, request.order_id, list(lines.values()))
            breakdown = await self._refund_due(session, request, list(lines.values()), payment)
            now = utcnow()
            request.status = ReturnStatus.RECEIVED
            request.refund_amount = breakdown.amount
            request.received_at = request.updated_at = now
            returns.stage(request)
            order_id, payload = await announced(
                session,
                request,
                "return received",
                {
                    "lines": [
                        {
                            "returnLineId": ln.id,
                            "productId": ln.product_id,
                            "received": ln.received_quantity,
                            "damaged": ln.damaged_quantity,
                        }
                        for ln in lines.values()
                    ],
                    "refundAmount": breakdown.amount,
                    "refund": {
                        "goods": breakdown.goods,
                        "tax": breakdown.tax,
                        "shipping": breakdown.shipping,
                        "capped": breakdown.capped,
                    },
                    "by": staff_id,
                },
                audience=TimelineAudience.CUSTOMER,
                notes=[
                    (
                        f"return {request.id}, stock of {lines[line_id].product_id}: "
                        + not_put_back_note(quantity),
                        {
                            "returnLineId": line_id,
                            "productId": lines[line_id].product_id,
                            "notPutBack": quantity,
                            "limit": MAX_STOCK,
                        },
                    )
                    for line_id, quantity in not_put_back.items()
                ],
            )
            await publish(session, EventType.RETURN_RECEIVED, order_id, payload)
            return breakdown.amount

    async def _restock(
        self, session: AsyncSession, order_id: str, lines: list[ReturnLine]
    ) -> dict[str, int]:
        """The undamaged units back on hand, once per return line. Units the stock has no
        room for (staff topped it up to nearly the most a product holds after the edge
        let the receipt through) are not put back (``StockService.put_back``): the
        receipt, and the refund, go on all the same; returns them by return line."""
        done = await ReturnRepository(session).restocked([ln.id for ln in lines])
        stock = StockService(session)
        not_put_back: dict[str, int] = {}
        for line in lines:
            if line.received_quantity == 0 or line.id in done:
                continue
            if not await stock.put_back(
                line.product_id,
                line.received_quantity,
                reason=f"return {line.return_id}",
                reference=line.id,
                order_id=order_id,
                return_id=line.return_id,
            ):
                not_put_back[line.id] = line.received_quantity
        return not_put_back

    async def _refund_due(
        self,
        session: AsyncSession,
        request: ReturnRequest,
        lines: list[ReturnLine],
        payment: Payment | None,
    ) -> RefundBreakdown:
        """The refund of ``lines``, after the order's other returns whose refund is fixed;
        the caller holds the order's ``payment`` row locked."""
        orders = OrderRepository(session)
        returns = ReturnRepository(session)
        order = await orders.require(request.order_id)
        order_lines = await orders.lines(order.id)
        prices = {ln.id: ln.unit_price for ln in order_lines}
        earlier = [
            r
            for r in await returns.for_order(order.id)
            if r.id != request.id and r.refund_amount is not None
        ]
        earlier_value = sum(
            prices[ln.order_line_id] * (ln.received_quantity + ln.damaged_quantity)
            for ln in await returns.lines([r.id for r in earlier])
        )
        value = sum(
            prices[ln.order_line_id] * (ln.received_quantity + ln.damaged_quantity) for ln in lines
        )
        shipping_refunded = any(r.reason in SHOP_FAULT_REASONS for r in earlier)
        # What is left to refund is also less the refunds fixed at receipt and not made
        # yet (a return ``received`` whose refund step is still running, or was refused
        # for staff to settle): counted by the payment row only once made, two returns
        # received before the first was refunded could owe more than was left, and
        # Stripe then refused one of them.
        owed = 0
        if payment is not None:
            made = await PaymentRepository(session).refunded_returns(payment)
            owed = sum(
                r.refund_amount or 0
                for r in earlier
                if r.status == ReturnStatus.RECEIVED and r.id not in made
            )
        return return_refund(
            OrderAmounts(
                lines_total=sum(ln.line_total for ln in order_lines),
                coupon_discount=order.coupon_discount,
                shipping=order.shipping,
                tax=order.tax,
                captured=payment.amount_captured if payment else 0,
                refunded=(payment.amount_refunded if payment else 0) + owed,
            ),
            returned_value=value,
            earlier_value=earlier_value,
            refund_shipping=request.reason in SHOP_FAULT_REASONS and not shipping_refunded,
        )

    async def refund(self, return_id: str) -> str | None:
        """Refund the amount fixed at receipt through the payment gateway, once (key
        ``return:{id}``, always the same amount); ``payment.refunded`` follows (with
        ``returnId``), then ``return.refunded``. Returns the provider's refund id. Raises
        ``NotRefundable`` when Stripe no longer has that much to refund (another refund
        took it after receipt); the return stays ``received``, the refusal recorded in
        its ``refund_error`` for staff to settle (``settle``). So does a refund Stripe
        made and that failed since (``RefundFailed``: a retry after a lost answer is
        answered with the refund as it stood when made)."""
        try:
            return await self._refund(return_id)
        except NotRefundable as refused:
            await self._record_refusal(return_id, refused.detail)
            raise

    async def _record_refusal(self, return_id: str, detail: str) -> None:
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status == ReturnStatus.RECEIVED and request.refund_error != detail:
                request.refund_error = detail
                request.updated_at = utcnow()
                returns.stage(request)

    async def _refund(self, return_id: str) -> str | None:
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status != ReturnStatus.RECEIVED:
                return request.refund_id
            # The amount fixed at receipt, never what is left now: an attempt whose
            # answer was lost counts in what is left once another refund is recorded,
            # and its retry must ask Stripe the same (which replays it). If the money
            # went to another refund first, Stripe refuses: ``NotRefundable``.
            amount = request.refund_amount or 0
            failed = await self._pay_back(
                session,
                request,
                amount,
                reason=f"return {request.id} ({request.reason})",
                staff_id=None,
                key=refund_key(request.id),
            )
            if failed is None:
                await self._refunded(session, request, amount)
                return request.refund_id
        # Committed (the refund recorded as made and as failed, the return ``received``
        # with its ``refund_error``), then raised for the workflow to wait for staff.
        raise failed

    async def _refunded(self, session: AsyncSession, request: ReturnRequest, amount: int) -> None:
        now = utcnow()
        request.refund_amount = amount
        request.status = ReturnStatus.REFUNDED
        request.refunded_at = request.updated_at = now
        ReturnRepository(session).stage(request)
        order_id, payload = await announced(
            session,
            request,
            f"return refunded: {Money(amount, request.currency).format()}",
            {"amount": amount, "currency": request.currency, "refundId": request.refund_id},
            audience=TimelineAudience.CUSTOMER,
        )
        await publish(session, EventType.RETURN_REFUNDED, order_id, payload)

    async def settle(self, return_id: str, *, amount: int, note: str, staff_id: str) -> None:
        """Staff settle a return whose refund was refused for good, or failed at Stripe
        after it was made (``services.refund_failures``): refund ``amount`` now
        (at most the amount fixed at receipt; 0 when the money went back another way)
        under ``settlement_key`` and close the return, ``return.refunded`` following
        (``settled``, what was ``owed``, the staff ``note``) with a timeline entry. Asked
        again with the same amount it changes nothing (a retry after a lost answer);
        with another, or for a return whose refund was not refused, it is refused."""
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.settlement_note is not None and request.refund_amount == amount:
                return  # settled already, with this amount: a retry
            if request.status != ReturnStatus.RECEIVED or request.refund_error is None:
                raise ReturnNotSettleable(
                    f"return {return_id} is {request.status}"
                    + ("" if request.settlement_note is None else ", settled with another amount")
                    + ": only a return whose refund was refused is settled by hand"
                )
            owed = request.refund_amount or 0
            if amount > owed:
                raise SettlementTooLarge(
                    f"at most the {owed} fixed at receipt", field="amount", owed=owed
                )
            failed = await self._pay_back(
                session,
                request,
                amount,
                reason=f"return {request.id} settled: {note}",
                staff_id=staff_id,
                # A return whose refund failed at Stripe keeps that refund's id.
                key=settlement_key(request.id, amount, failed=request.refund_id),
            )
            if failed is None:
                await self._settled(session, request, amount, note=note, staff_id=staff_id)
                return
        # The settlement's refund failed at Stripe (its retry answered with it as made):
        # committed ``received`` with the failure, for staff to settle again (a new key).
        raise failed

    async def _settled(
        self,
        session: AsyncSession,
        request: ReturnRequest,
        amount: int,
        *,
        note: str,
        staff_id: str,
    ) -> None:
        owed = request.refund_amount or 0
        now = utcnow()
        request.refund_amount = amount
        request.settlement_note = note
        request.status = ReturnStatus.CLOSED
        request.refunded_at = request.closed_at = request.updated_at = now
        ReturnRepository(session).stage(request)
        order_id, payload = await announced(
            session,
            request,
            f"return settled by staff: {Money(amount, request.currency).format()} refunded "
            f"of {Money(owed, request.currency).format()}",
            {
                "amount": amount,
                "currency": request.currency,
                "refundId": request.refund_id,
                "settled": True,
                "owed": owed,
                "note": note,
                "by": staff_id,
            },
            # A staff decision; what the customer got back is the refund's own entry.
            audience=TimelineAudience.STAFF,
        )
        await publish(session, EventType.RETURN_REFUNDED, order_id, payload)

    async def _pay_back(
        self,
        session: AsyncSession,
        request: ReturnRequest,
        amount: int,
        *,
        reason: str,
        staff_id: str | None,
        key: str,
    ) -> RefundFailed | None:
        """Refund ``amount`` of the return's order at the provider under ``key`` (nothing
        for 0), its ``payment.refunded`` carrying the return's id; the caller holds the
        return's row lock and records the rest. A refund that failed at Stripe since it
        was made leaves the return ``received`` with the failure as its
        ``refund_error``: returned, for the caller to raise once committed."""
        if amount <= 0:
            return None
        order = await OrderRepository(session).require(request.order_id)
        outcome = await payments.refund(
            session,
            self._gateway,
            order,
            amount=amount,
            reason=reason,
            staff_id=staff_id,
            key=key,
            source={"returnId": request.id},
        )
        request.refund_id = outcome.refund_id
        if outcome.failure is None:
            return None
        request.refund_error = failure_note(outcome.refund_id, outcome.failure)
        request.updated_at = utcnow()
        ReturnRepository(session).stage(request)
        return RefundFailed(
            request.refund_error, refundId=outcome.refund_id, reason=outcome.failure
        )

    async def close(self, return_id: str) -> ReturnStatus:
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status == ReturnStatus.REFUNDED:
                request.status = ReturnStatus.CLOSED
                request.closed_at = request.updated_at = utcnow()
                returns.stage(request)
            return ReturnStatus(request.status)


async def announced(
    session: AsyncSession,
    request: ReturnRequest,
    message: str,
    data: dict[str, Any],
    *,
    audience: TimelineAudience,
    notes: Sequence[tuple[str, dict[str, Any]]] = (),
) -> tuple[str, dict[str, Any]]:
    """The order id and payload of a return's event (with what its email needs), and
    the order's timeline entry for ``audience``, then a staff-only one per ``notes`` (a
    message and its data: what staff have to see, as units not put back on hand); the
    caller publishes it."""
    orders = OrderRepository(session)
    order = await orders.require(request.order_id)
    await orders.add_event(
        order.id, order.status, message, {"returnId": request.id}, audience=audience
    )
    for note, noted in notes:
        await orders.add_event(
            order.id,
            order.status,
            note,
            {"returnId": request.id, **noted},
            audience=TimelineAudience.STAFF,
        )
    return order.id, {
        "returnId": request.id,
        "orderId": order.id,
        "userId": order.user_id,
        "email": order.email,
        "reason": str(request.reason),
        **data,
    }
