"""The order workflow's payment steps (queue ``payments``), over ``services.payments``."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.errors import ShopError
from services.payments import Authorization, PaymentService
from temporal.errors import application_errors
from workflows.types.orders import OrderRef

# The workflow's name for what authorise and refresh answer.
AuthorizationResult = Authorization


class PaymentActivities:
    def __init__(self, payments: PaymentService) -> None:
        self._payments = payments

    @activity.defn(name="payments.authorize")
    async def authorize(self, input: OrderRef) -> AuthorizationResult:
        """process-payment: authorise the total (manual capture)."""
        with application_errors():
            return await self._payments.authorize(input.order_id)

    @activity.defn(name="payments.refresh")
    async def refresh(self, input: OrderRef) -> AuthorizationResult:
        """Where the payment stands at the provider now (after 3-D Secure)."""
        with application_errors():
            return await self._payments.refresh(input.order_id)

    @activity.defn(name="payments.capture")
    async def capture(self, input: OrderRef) -> int:
        with application_errors():
            state = await self._payments.capture(input.order_id)
        return state.amount_captured

    @activity.defn(name="payments.void_or_refund")
    async def void_or_refund(self, input: OrderRef) -> str:
        """Compensation: release the hold, or refund a captured payment."""
        try:
            return await self._payments.void_or_refund(input.order_id)
        except ShopError as exc:
            # Even "final" provider answers are retried here: a compensation must finish.
            raise ApplicationError(exc.detail, exc.extra, type=exc.code) from exc
