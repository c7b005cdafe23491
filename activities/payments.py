"""The order workflow's payment steps (queue ``payments``), over ``services.payments``."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.orders import OrderRef
from core.errors import ShopError
from services.payments import PaymentService
from temporal.errors import to_application_error


class AuthorizationResult(BaseModel):
    status: str
    next_action_url: str | None = None
    failure_code: str | None = None


class PaymentActivities:
    def __init__(self, payments: PaymentService) -> None:
        self._payments = payments

    @activity.defn(name="payments.authorize")
    async def authorize(self, input: OrderRef) -> AuthorizationResult:
        """process-payment: authorise the total (manual capture)."""
        try:
            result = await self._payments.authorize(input.order_id)
        except ShopError as exc:
            raise to_application_error(exc) from exc
        return AuthorizationResult(
            status=str(result.status),
            next_action_url=result.next_action_url,
            failure_code=result.failure_code,
        )

    @activity.defn(name="payments.refresh")
    async def refresh(self, input: OrderRef) -> AuthorizationResult:
        """Where the payment stands at the provider now (after 3-D Secure)."""
        try:
            result = await self._payments.refresh(input.order_id)
        except ShopError as exc:
            raise to_application_error(exc) from exc
        return AuthorizationResult(status=str(result.status), failure_code=result.failure_code)

    @activity.defn(name="payments.capture")
    async def capture(self, input: OrderRef) -> int:
        try:
            state = await self._payments.capture(input.order_id)
        except ShopError as exc:
            raise to_application_error(exc) from exc
        return state.amount_captured

    @activity.defn(name="payments.void_or_refund")
    async def void_or_refund(self, input: OrderRef) -> str:
        """Compensation: release the hold, or refund a captured payment."""
        try:
            return await self._payments.void_or_refund(input.order_id)
        except ShopError as exc:
            # Even "final" provider answers are retried here: a compensation must finish.
            raise ApplicationError(exc.detail, exc.extra, type=exc.code) from exc
