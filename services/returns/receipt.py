"""``ReturnWorkflow``'s receipt step: what came back, the undamaged units back on hand,
and the refund fixed (``refunds.return_refund``) after the order's other returns."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.inventory import MAX_STOCK
from models.orders import TimelineAudience
from models.payments import Payment
from models.returns import SHOP_FAULT_REASONS, ReturnLine, ReturnRequest, ReturnStatus
from services.inventory.stock import StockService, not_put_back_note
from services.order_repository import OrderRepository
from services.payments.repository import PaymentRepository
from services.returns.errors import (
    InvalidReceipt,
)
from services.returns.refunds import OrderAmounts, RefundBreakdown, return_refund
from services.returns.repository import ReturnRepository
from services.returns.timeline import announced
from workflows.types.returns import ReceivedLine


class ReturnReceipt:
    """The receipt step of ``ReturnSteps`` (which holds the sessions)."""

    _sessions: SessionFactory

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
