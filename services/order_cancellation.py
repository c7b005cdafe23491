"""A customer's cancel (``POST /api/orders/{id}/cancel``): through the order's
``OrderWorkflow`` until it hands the order to the warehouse, then through its
``FulfillmentWorkflow`` until a parcel has a label.

The hand-over is not one instant. Past its point of no return the ``OrderWorkflow``
refuses a cancel while its queue step has not committed yet (the order still reads
``confirmed``), and once it has, the ``FulfillmentWorkflow`` is started by the relay a
moment later. A cancel that meets the order in between is never answered with a final
"no": the order is read again after the refusal, and the cancel goes to the fulfilment
if that is the owner now, or is answered 503 with ``Retry-After`` (a moment later the
same request goes through).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from core.errors import Conflict, ShopError, TemporalUnavailable
from models.orders import AFTER_SALE_STATUSES, FINAL_STATUSES, Order, OrderStatus
from services.order_repository import OrderRepository
from temporal.clients import WorkflowClients
from temporal.clients.connection import WorkflowNotFound, WorkflowRefused
from temporal.clients.orders import CancelOutcome
from workflows.types.orders import CancelRequest

# The hand-over's steps are a local activity's commit and the relay's start of the
# fulfilment: a second is plenty.
HANDOVER_RETRY_SECONDS = 1


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    title = "The order can no longer be cancelled"


class OrderBeingHandedOver(ShopError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "order_being_handed_over"
    title = "The order is being handed to the warehouse; try again in a moment"
    retryable = True
    retry_after_seconds = HANDOVER_RETRY_SECONDS


@dataclass(frozen=True)
class CancelAnswer:
    order: Order  # as the database has it after the cancel
    underway: bool  # accepted, still undoing (it finishes in the background)


class OrderCancellation:
    def __init__(self, orders: OrderRepository, workflows: WorkflowClients) -> None:
        self.orders = orders
        self.workflows = workflows

    async def cancel(self, order: Order, reason: str | None) -> CancelAnswer:
        """Cancel ``order`` (as the caller read it); ``OrderNotCancellable`` once a parcel
        has a label or the order failed, ``OrderBeingHandedOver`` while the hand-over to
        the warehouse is in flight."""
        status = OrderStatus(order.status)
        if status is OrderStatus.CANCELLED:
            return CancelAnswer(order, underway=False)
        if status is OrderStatus.FULFILLMENT_QUEUED:
            return await self._through_fulfilment(order, reason)
        if status in FINAL_STATUSES or status in AFTER_SALE_STATUSES:
            raise OrderNotCancellable(f"the order is {status}")
        try:
            outcome = await self.workflows.orders.cancel(order.id, CancelRequest(reason=reason))
        except WorkflowRefused as refused:
            return await self._after_refusal(order, reason, refused)
        await self.orders.reread(order)
        now = OrderStatus(order.status)
        if now is OrderStatus.FULFILLMENT_QUEUED:
            # The workflow had handed it over and ended before the cancel reached it.
            return await self._through_fulfilment(order, reason)
        if now is not OrderStatus.CANCELLED and (
            now in FINAL_STATUSES or now in AFTER_SALE_STATUSES
        ):
            # It ended otherwise first (e.g. the payment failed while the cancel was on its way).
            raise OrderNotCancellable(f"the order is {now}")
        if outcome is CancelOutcome.NOT_RUNNING and now not in FINAL_STATUSES:
            raise TemporalUnavailable("the order's workflow cannot be reached yet; try again")
        return CancelAnswer(order, underway=outcome is CancelOutcome.UNDERWAY)

    async def _after_refusal(
        self, order: Order, reason: str | None, refused: WorkflowRefused
    ) -> CancelAnswer:
        """The ``OrderWorkflow`` said no: where does the order stand now?"""
        await self.orders.reread(order)
        now = OrderStatus(order.status)
        if now is OrderStatus.CANCELLED:
            return CancelAnswer(order, underway=False)
        if now is OrderStatus.FULFILLMENT_QUEUED:
            return await self._through_fulfilment(order, reason)
        if now in FINAL_STATUSES or now in AFTER_SALE_STATUSES or order.undoing_at is not None:
            # Failed, shipped, or being undone (it will end failed or cancelled).
            raise OrderNotCancellable(refused.detail) from refused
        # Still at a cancellable status, yet refused: the workflow is past its point of no
        # return and its queue step has not committed yet.
        raise OrderBeingHandedOver(
            "the order is being handed to the warehouse, where it can still be cancelled;"
            " try again in a moment"
        ) from refused

    async def _through_fulfilment(self, order: Order, reason: str | None) -> CancelAnswer:
        """An order handed to the warehouse is cancelled by its ``FulfillmentWorkflow``
        while no parcel has a label (refund, restock, ``cancelled``)."""
        try:
            done = await self.workflows.fulfillments.cancel(order.id, reason)
        except WorkflowRefused as exc:
            raise OrderNotCancellable(exc.detail) from exc
        except WorkflowNotFound as exc:
            # Not started yet (the relay is about to), or finished (delivered or cancelled).
            await self.orders.reread(order)
            if order.status == OrderStatus.CANCELLED:
                return CancelAnswer(order, underway=False)
            if order.status != OrderStatus.FULFILLMENT_QUEUED:
                raise OrderNotCancellable(f"the order is {order.status}") from exc
            raise OrderBeingHandedOver(
                "the order's fulfilment is starting, where it can still be cancelled;"
                " try again in a moment"
            ) from exc
        await self.orders.reread(order)
        return CancelAnswer(order, underway=done is None)
