"""``ReturnWorkflow``'s refund step and the staff's settlement of a refund refused or
failed: each refund keyed at the provider (``refund_key``, ``settlement_key``), so that a
repeated step or request refunds once."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.money import Money
from core.outbox import publish
from integrations.payments.gateway import PaymentGateway
from models.base import utcnow
from models.orders import TimelineAudience
from models.returns import ReturnRequest, ReturnStatus
from services import payments
from services.order_repository import OrderRepository
from services.payments.refunds import NotRefundable, RefundFailed
from services.returns.errors import (
    ReturnNotSettleable,
    SettlementTooLarge,
    failure_note,
)
from services.returns.repository import ReturnRepository
from services.returns.timeline import announced


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


class ReturnRefunds:
    """The refund and settlement steps of ``ReturnSteps`` (which holds the sessions and the
    payment gateway)."""

    _sessions: SessionFactory
    _gateway: PaymentGateway

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
