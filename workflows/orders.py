"""``OrderWorkflow``: the seed's order pipeline as a saga (ARCHITECTURE §5).

validate-order → check-inventory → process-payment (authorise; 3-D Secure may make the
customer act) → create-order → update-inventory → capture → send-confirmation and
queue-fulfillment in parallel. Each step that has an effect registers its compensation
*before* it runs; on a business failure, exhausted retries, or a customer's cancel, the
compensations run in reverse, each retried until it succeeds, and the order ends
``failed`` (with a ``failureCode``) or ``cancelled``. An order priced at 0 has no payment
steps: there is nothing to authorise or capture, and Stripe refuses an amount of 0.

The ``orders`` row is written by the activities; the workflow mirrors the status for its
``status`` query and the ``OrderStatus``/``CustomerId``/``OrderTotal`` search attributes.

This module is the pipeline; the state it moves and the messages that read or change it
are ``workflows/order_state.py``, how a step, a compensation or an email runs is
``workflows/order_steps.py``, and the patches its runs ask are ``workflows/order_patches.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from activities.payments import AuthorizationResult, PaymentActivities
    from core.money import Money
    from models.orders import PAYMENT_FAILURES, OrderSnapshot, OrderStatus
    from temporal.queues import TaskQueue
    from workflows.order_patches import (
        AUTHORISE_WAITS_OUT_OUTAGES,
        FREE_ORDERS_UNCHARGED,
        LOCAL_DATABASE_STEPS,
        PATCHES_DECIDED_AT_START,
        PAYMENT_FAILED_EMAIL_BY_EVENT,
        STOCK_HELD_AGAIN_AFTER_3DS,
        STOCK_HELD_AGAIN_AFTER_AUTHORISE,
        UNDO_FINISHES,
    )
    from workflows.order_state import OrderState
    from workflows.order_steps import (
        Compensation,
        OrderCancelled,
        OrderFailed,
        OrderSteps,
        despite_cancel,
    )
    from workflows.types.orders import (
        ORDER_WORKFLOW,
        CloseInput,
        ExtendInput,
        OrderInput,
        OrderRef,
        OrderView,
        ReserveInput,
    )

AUTHORIZED, REQUIRES_ACTION, CAPTURED = "authorized", "requires_action", "captured"
# process-payment's failure that says the provider could not be reached (its 5xx answers,
# lost connections, rate limits, calls that timed out: ``PaymentUnavailable``): tried again
# in a new round. Anything else (a decline, a bug) fails the order at once, as before.
PROVIDER_UNREACHABLE = "payment_unavailable"
# The pause between two rounds of process-payment's attempts: doubled each time up to the
# most (a round against a provider answering 5xx takes about 8 s itself).
FIRST_PAUSE, MOST_PAUSE = timedelta(seconds=2), timedelta(seconds=30)


# Unsandboxed, as the event workflows are: every order runs this workflow, and building
# its sandbox was about 10 ms of worker CPU per run (recorded histories replayed: 23-30
# ms sandboxed, 13-22 unsandboxed, issue #15). Its module uses neither the clock nor
# randomness nor the OS (tests/temporal/test_sandbox.py reads it), and what it imports
# is passed through the sandbox all the same.
@workflow.defn(name=ORDER_WORKFLOW, sandboxed=False)
class OrderWorkflow(OrderState):
    # --- the pipeline -----------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderInput) -> OrderView:
        self._order_id, self._user_id = input.order_id, input.user_id
        self._input = input
        # The short, idempotent database steps run as local activities in this worker
        # (no task queue round trip, no scheduled/started/completed events): a crashed
        # worker's workflow task is retried elsewhere and the step runs again.
        self._local_steps = workflow.patched(LOCAL_DATABASE_STEPS)
        self._patches_at_start = workflow.patched(PATCHES_DECIDED_AT_START)
        self._waits_out_outages = workflow.patched(AUTHORISE_WAITS_OUT_OUTAGES)
        self._steps = OrderSteps(input.order_id, input.steps, self._local_steps)
        ref = OrderRef(order_id=input.order_id)
        compensations: list[tuple[str, Compensation]] = []
        if not self._local_steps:
            self._mirror(OrderStatus.PENDING)
        try:
            snapshot: OrderSnapshot = await self._steps.run(
                "validate-order",
                OrderActivities.validate,
                ref,
                "price the cart, snapshot lines",
                local=True,
            )
            self._snapshot = snapshot
            self._total = snapshot.total
            self._mirror(OrderStatus.PENDING)
            self._check_cancel()

            compensations.append(
                (
                    "release stock",
                    lambda: self._steps.compensate(
                        OrderActivities.release_stock, ref, "give back held or sold stock"
                    ),
                )
            )
            self._held_at = workflow.now()
            await self._steps.run(
                "check-inventory",
                OrderActivities.reserve_stock,
                ReserveInput(order_id=input.order_id, ttl_seconds=input.reservation_ttl_seconds),
                "reserve stock for every line",
                local=True,
            )
            self._mirror(OrderStatus.RESERVED)
            self._check_cancel()

            charged = snapshot.total > 0 or not self._since(FREE_ORDERS_UNCHARGED)
            if charged:
                await self._authorize(snapshot, ref, compensations)

            compensations.append(
                (
                    "undo create-order",
                    lambda: self._steps.compensate(
                        OrderActivities.undo_confirm,
                        ref,
                        "give back the coupon use, reopen the cart",
                    ),
                )
            )
            await self._steps.run(
                "create-order",
                OrderActivities.confirm,
                ref,
                "confirm the order, record coupon use",
                local=True,
            )
            self._mirror(OrderStatus.CONFIRMED)
            self._check_cancel()

            await self._steps.run(
                "update-inventory",
                OrderActivities.commit_stock,
                ref,
                "turn the reservation into a sale",
                local=True,
            )
            self._check_cancel()
            if charged:
                await self._steps.run(
                    "capture-payment",
                    PaymentActivities.capture,
                    ref,
                    "capture the authorised amount",
                    queue=TaskQueue.PAYMENTS,
                )
                self._check_cancel()

            # The point of no return: from here the order cannot be cancelled.
            self._fulfilment_started = True
            await asyncio.gather(
                self._steps.send_email(self._snapshot, "order_confirmation", "send-confirmation"),
                self._steps.run(
                    "queue-fulfillment",
                    OrderActivities.queue_fulfillment,
                    ref,
                    "publish fulfillment.order_ready",
                    forever=True,  # past the point of no return there is no failing
                    local=True,
                ),
            )
            self._mirror(OrderStatus.FULFILLMENT_QUEUED)
            self._closed = True
        except OrderCancelled:
            await self._unwind(compensations, OrderStatus.CANCELLED, None, self._cancel_reason)
        except asyncio.CancelledError:
            # Cancelled from Temporal (the UI, the CLI): undo the order all the same.
            await self._unwind(
                compensations, OrderStatus.CANCELLED, None, "cancelled by an operator"
            )
        except OrderFailed as failed:
            await self._unwind(
                compensations, OrderStatus.FAILED, failed.code, failed.detail, failed.data
            )
        self._done = True
        return self.status()

    async def _authorize(
        self,
        snapshot: OrderSnapshot,
        ref: OrderRef,
        compensations: list[tuple[str, Compensation]],
    ) -> None:
        """process-payment: hold the total (after 3-D Secure, if the card asks for it)."""
        compensations.append(
            (
                "void or refund payment",
                lambda: self._steps.compensate(
                    PaymentActivities.void_or_refund,
                    ref,
                    "void the authorisation or refund",
                    queue=TaskQueue.PAYMENTS,
                ),
            )
        )
        # What the UI shows (metadata, not compared on replay): the total as the shopper
        # reads it.
        summary = f"authorise {Money(snapshot.total, snapshot.currency).format()} (manual capture)"
        auth: AuthorizationResult
        if self._waits_out_outages:
            auth = await self._authorize_through_outages(ref, summary)
        else:
            auth = await self._steps.run(
                "process-payment",
                PaymentActivities.authorize,
                ref,
                summary,
                queue=TaskQueue.PAYMENTS,
            )
        if auth.status == REQUIRES_ACTION:
            await self._await_customer_action(auth.next_action_url)
        elif auth.status != AUTHORIZED:
            raise OrderFailed("payment_declined", f"the payment is {auth.status}")
        elif self._hold_may_have_lapsed() and workflow.patched(STOCK_HELD_AGAIN_AFTER_AUTHORISE):
            await self._hold_stock_again()
        self._mirror(OrderStatus.PAYMENT_AUTHORIZED)
        self._check_cancel()

    async def _authorize_through_outages(self, ref: OrderRef, summary: str) -> AuthorizationResult:
        """process-payment while the provider cannot be reached: a round of the step's
        attempts, then (if the provider was unreachable throughout) a pause and another
        round, until ``authorize_timeout_seconds`` have passed; its failure then is the
        order's. The stock stays held all along (the budget is at most half its TTL), and
        every round asks Stripe under the same idempotency keys, so one payment is made
        however many rounds it takes. A cancel is heard at once, in a round or a pause."""
        deadline = workflow.now() + timedelta(seconds=self._input.authorize_timeout_seconds)
        pause = FIRST_PAUSE
        while True:
            try:
                result: AuthorizationResult = await self._unless_cancelled(
                    self._steps.run(
                        "process-payment",
                        PaymentActivities.authorize,
                        ref,
                        summary,
                        queue=TaskQueue.PAYMENTS,
                    )
                )
                return result
            except OrderFailed as failed:
                if failed.code != PROVIDER_UNREACHABLE or workflow.now() + pause >= deadline:
                    raise
            workflow.set_current_details(
                f"reserved: waiting for the payment provider; trying until {deadline:%F %T} UTC"
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._cancel_requested, timeout=pause.total_seconds()
                )
            self._check_cancel()
            pause = min(pause * 2, MOST_PAUSE)

    async def _await_customer_action(self, url: str | None) -> None:
        """3-D Secure: hold the stock while the customer authenticates, up to the limit."""
        self._next_action_url = url
        self._mirror(OrderStatus.REQUIRES_ACTION)
        limit = timedelta(seconds=self._input.action_timeout_seconds)
        deadline = workflow.now() + limit
        await self._steps.run(
            "extend-reservation",
            OrderActivities.extend_reservation,
            ExtendInput(
                order_id=self._order_id,
                until=deadline + timedelta(seconds=self._input.reservation_ttl_seconds),
            ),
            "hold stock while the customer authenticates",
        )
        ref = OrderRef(order_id=self._order_id)
        workflow.set_current_details(
            f"requires_action: waiting for the customer's 3-D Secure until {deadline:%F %T} UTC"
        )
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            timed_out = False
            try:
                await workflow.wait_condition(
                    lambda: bool(self._webhooks) or self._cancel_requested,
                    timeout=max(remaining, 0.001),
                )
            except TimeoutError:
                timed_out = True
            self._check_cancel()
            self._webhooks.clear()
            # Trust the provider, not the webhook's copy: ask where the payment stands.
            now: AuthorizationResult = await self._steps.run(
                "check-payment",
                PaymentActivities.refresh,
                ref,
                "ask the provider about 3-D Secure",
                queue=TaskQueue.PAYMENTS,
            )
            if now.status in (AUTHORIZED, CAPTURED):
                self._next_action_url = None
                if workflow.patched(STOCK_HELD_AGAIN_AFTER_3DS):
                    await self._hold_stock_again()
                return
            if now.status != REQUIRES_ACTION:
                raise OrderFailed(
                    "payment_declined", f"3-D Secure failed ({now.failure_code or now.status})"
                )
            if timed_out:
                raise OrderFailed(
                    "payment_action_timeout", "the customer did not complete 3-D Secure in time"
                )

    def _hold_may_have_lapsed(self) -> bool:
        """Whether half the reservation's TTL has passed since check-inventory took it
        (before that, the sweep cannot have given it back)."""
        if self._held_at is None:
            return False
        ttl = timedelta(seconds=self._input.reservation_ttl_seconds)
        return workflow.now() - self._held_at >= ttl / 2

    async def _hold_stock_again(self) -> None:
        """hold-stock-again: the stock held again if the hold lapsed (a no-op while it is
        held); ``out_of_stock`` if it is gone, which fails the order, the payment voided."""
        await self._steps.run(
            "hold-stock-again",
            OrderActivities.reserve_again,
            ReserveInput(order_id=self._order_id, ttl_seconds=self._input.reservation_ttl_seconds),
            "hold the stock again if the hold lapsed",
            local=True,
        )

    async def _unwind(
        self,
        compensations: list[tuple[str, Compensation]],
        status: OrderStatus,
        code: str | None,
        detail: str | None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self._compensating = True
        undo = self._undo(compensations, status, code, detail, data)
        if self._since(UNDO_FINISHES):
            await despite_cancel(undo)
        else:
            await undo

    async def _undo(
        self,
        compensations: list[tuple[str, Compensation]],
        status: OrderStatus,
        code: str | None,
        detail: str | None,
        data: dict[str, Any] | None,
    ) -> None:
        for _name, compensation in reversed(compensations):
            await compensation()
        await self._steps.compensate(
            OrderActivities.close,
            CloseInput(
                order_id=self._order_id,
                status=status,
                failure_code=code,
                detail=detail,
                data=data or {},
            ),
            f"mark the order {status}",
        )
        self._failure_code = code
        self._next_action_url = None
        self._mirror(status)
        self._closed = True
        if (
            status is OrderStatus.FAILED
            and code in PAYMENT_FAILURES
            and workflow.patched(PAYMENT_FAILED_EMAIL_BY_EVENT)
        ):
            # The customer hears from the payment.failed event's subscriber (what failed
            # and how to try again); an order_failed email as well would make two.
            return
        template = "order_cancelled" if status is OrderStatus.CANCELLED else "order_failed"
        await self._steps.send_email(self._snapshot, template, f"notify-{status}", reason=detail)
