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
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.email import (
        NOTIFICATION_RETRY,
        NOTIFICATION_SCHEDULE_TO_CLOSE,
        NOTIFICATION_START_TO_CLOSE,
        EmailActivities,
        SendEmailInput,
    )
    from activities.orders import OrderActivities
    from activities.payments import AuthorizationResult, PaymentActivities
    from models.orders import (
        CANCELLABLE_STATUSES,
        PAYMENT_FAILURES,
        OrderSnapshot,
        OrderStatus,
    )
    from temporal.attempts import REPORT_GRACE
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue
    from temporal.search_attributes import CUSTOMER_ID, ORDER_STATUS, ORDER_TOTAL
    from workflows.types.orders import (
        DECISIVE_WEBHOOKS,
        ORDER_WORKFLOW,
        PAYMENT_WEBHOOK_SIGNAL,
        STATUS_QUERY,
        CancelRequest,
        CloseInput,
        ExtendInput,
        OrderInput,
        OrderRef,
        OrderView,
        PaymentWebhook,
        ReserveInput,
    )

AUTHORIZED, REQUIRES_ACTION, CAPTURED = "authorized", "requires_action", "captured"
# Orders started before this patch still email order_failed for a payment failure.
PAYMENT_FAILED_EMAIL_BY_EVENT = "payment-failed-email-by-event"
# Orders started before this patch run their database steps as remote activities and
# upsert every search attribute at every status (six upserts on the happy path).
LOCAL_DATABASE_STEPS = "local-database-steps"
# Statuses an order passes through in a moment on its way to the next: since
# LOCAL_DATABASE_STEPS the search attributes skip them (the query still has them).
PASSING_STATUSES = frozenset({OrderStatus.RESERVED, OrderStatus.PAYMENT_AUTHORIZED})
# Orders started before this patch stop undoing where a cancel from Temporal (the UI, the
# CLI) reaches them while they undo: the compensation it interrupts and the ones after
# it never run (a hold not voided, a payment not refunded, the order left open). Since
# this patch the undo, once begun, finishes whatever comes (see _despite_cancel).
UNDO_FINISHES = "undo-finishes-when-cancelled"
# Orders started before this patch authorise and capture even a total of 0, which Stripe
# refuses (a PaymentIntent needs an amount of at least 1): a free order (a 100 % coupon
# with free shipping) failed at process-payment. Since it, an order priced at 0 skips
# the payment steps and their compensation: nothing is charged, nothing to give back.
FREE_ORDERS_UNCHARGED = "free-orders-uncharged"
# Since this patch the two above are not asked: it came after them, so a run that has it
# takes their new code. They were first asked after a local step (the stock step's
# result, a local step's failure), and a local step's result that comes while the worker
# answers a query is recorded one workflow task before what the workflow does with it: a
# replay (a query of the closed order, a worker taking the order up after its cache
# dropped it) asked the patch before it knew of its marker, answered False and failed
# ("Non-deprecated patch marker encountered"). This one is asked in the first task.
PATCHES_DECIDED_AT_START = "order-patches-decided-at-start"
# Orders started before this patch go on from an authenticated 3-D Secure to the sale
# without looking at the stock: a hold that lapsed meanwhile (expired before the wait
# extended it, e.g. authorise retried past the TTL) failed the order at update-inventory
# (reservation_lapsed), the customer authenticated, the hold voided. Since it, the stock
# is held again when the authentication arrives; only if it is gone does the order fail
# (out_of_stock, the hold voided).
STOCK_HELD_AGAIN_AFTER_3DS = "stock-held-again-after-3ds"
# Orders started before this patch go on from an authorise that succeeded after the
# stock's hold lapsed (Stripe down longer than RESERVATION_TTL_SECONDS, authorise retried
# meanwhile) to update-inventory, which failed the order (reservation_lapsed, the hold
# voided) though the card was authorised. Since it, an authorise that ends once half the
# TTL has passed since the hold (the hold's clock is the database's, the workflow's the
# Temporal server's: half leaves room for any skew) is followed by hold-stock-again, as
# after 3-D Secure. Asked after the authorise's (remote) result, only then.
STOCK_HELD_AGAIN_AFTER_AUTHORISE = "stock-held-again-after-authorise"
# Our error codes are snake_case; a Python exception's class name (a bug) is not.
_OUR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


class OrderFailed(Exception):
    """Ends the happy path; carries the failure code the order will show."""

    def __init__(self, code: str, detail: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        # The business error's details, e.g. ``unavailableItems`` for out_of_stock.
        self.data = data or {}


class OrderCancelled(Exception):
    pass


def _failure(err: FailureError, step: str) -> OrderFailed:
    """Our errors keep their stable code and message; anything else (a bug, a timeout)
    becomes ``{step}_failed`` without internals, which stay in the workflow history.

    A remote activity's failure arrives as an ``ActivityError`` around its cause; a local
    activity's arrives as the cause itself."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type and _OUR_CODE.match(cause.type):
        first = cause.details[0] if cause.details else None
        data = {k: v for k, v in first.items() if v is not None} if isinstance(first, dict) else {}
        return OrderFailed(cause.type, f"{step}: {cause.message}", data)
    return OrderFailed(
        f"{step.replace('-', '_')}_failed", f"{step}: could not complete; it was retried"
    )


Compensation = Callable[[], Awaitable[Any]]


# Unsandboxed, as the event workflows are: every order runs this workflow, and building
# its sandbox was about 10 ms of worker CPU per run (recorded histories replayed: 23-30
# ms sandboxed, 13-22 unsandboxed, issue #15). Its module uses neither the clock nor
# randomness nor the OS (tests/temporal/test_sandbox.py reads it), and what it imports
# is passed through the sandbox all the same.
@workflow.defn(name=ORDER_WORKFLOW, sandboxed=False)
class OrderWorkflow:
    def __init__(self) -> None:
        self._order_id = ""
        self._user_id = ""
        self._status = OrderStatus.PENDING
        self._failure_code: str | None = None
        self._next_action_url: str | None = None
        self._total = 0
        self._cancel_reason: str | None = None
        self._cancel_requested = False
        self._fulfilment_started = False
        self._compensating = False
        self._done = False
        self._closed = False  # a final status is set (the order row says so too)
        self._webhooks: list[PaymentWebhook] = []
        self._seen_events: set[str] = set()
        self._input = OrderInput(order_id="", user_id="")
        self._snapshot: OrderSnapshot | None = None
        self._local_steps = False
        self._held_at: datetime | None = None  # when check-inventory took the hold
        self._patches_at_start = False  # PATCHES_DECIDED_AT_START
        self._indexed: dict[str, object] = {}  # search attribute values upserted so far

    # --- messages ---------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> OrderView:
        return OrderView(
            order_id=self._order_id,
            status=self._status,
            failure_code=self._failure_code,
            next_action_url=self._next_action_url,
            total=self._total,
        )

    @workflow.signal(name=PAYMENT_WEBHOOK_SIGNAL)
    def payment_webhook(self, webhook: PaymentWebhook) -> None:
        """A verified provider webhook (the API checked its signature)."""
        if webhook.event_id in self._seen_events:
            return
        self._seen_events.add(webhook.event_id)
        if webhook.type in DECISIVE_WEBHOOKS:
            self._webhooks.append(webhook)

    @workflow.update  # named CANCEL_UPDATE (typed callers keep the method's result type)
    async def cancel(self, request: CancelRequest) -> OrderView:
        if not self._cancel_requested:
            self._cancel_requested = True
            self._cancel_reason = request.reason
        # Answered once the order is closed (the customer's email may follow later).
        await workflow.wait_condition(lambda: self._closed)
        return self.status()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        if self._cancel_requested and not self._closed:
            return  # asking again while it is being cancelled is harmless
        if (
            self._fulfilment_started
            or self._compensating
            or self._done
            or self._status not in CANCELLABLE_STATUSES
        ):
            raise ApplicationError(
                f"the order is {self._status} and can no longer be cancelled",
                type="order_not_cancellable",
                non_retryable=True,
            )

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
        ref = OrderRef(order_id=input.order_id)
        compensations: list[tuple[str, Compensation]] = []
        if not self._local_steps:
            self._mirror(OrderStatus.PENDING)
        try:
            snapshot: OrderSnapshot = await self._step(
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
                    lambda: self._compensate(
                        OrderActivities.release_stock, ref, "give back held or sold stock"
                    ),
                )
            )
            self._held_at = workflow.now()
            await self._step(
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
                    lambda: self._compensate(
                        OrderActivities.undo_confirm,
                        ref,
                        "give back the coupon use, reopen the cart",
                    ),
                )
            )
            await self._step(
                "create-order",
                OrderActivities.confirm,
                ref,
                "confirm the order, record coupon use",
                local=True,
            )
            self._mirror(OrderStatus.CONFIRMED)
            self._check_cancel()

            await self._step(
                "update-inventory",
                OrderActivities.commit_stock,
                ref,
                "turn the reservation into a sale",
                local=True,
            )
            self._check_cancel()
            if charged:
                await self._step(
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
                self._send_email("order_confirmation", "send-confirmation"),
                self._step(
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
                lambda: self._compensate(
                    PaymentActivities.void_or_refund,
                    ref,
                    "void the authorisation or refund",
                    queue=TaskQueue.PAYMENTS,
                ),
            )
        )
        auth: AuthorizationResult = await self._step(
            "process-payment",
            PaymentActivities.authorize,
            ref,
            f"authorise {snapshot.total} {snapshot.currency} (manual capture)",
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

    async def _await_customer_action(self, url: str | None) -> None:
        """3-D Secure: hold the stock while the customer authenticates, up to the limit."""
        self._next_action_url = url
        self._mirror(OrderStatus.REQUIRES_ACTION)
        limit = timedelta(seconds=self._input.action_timeout_seconds)
        deadline = workflow.now() + limit
        await self._step(
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
            now: AuthorizationResult = await self._step(
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
        await self._step(
            "hold-stock-again",
            OrderActivities.reserve_again,
            ReserveInput(order_id=self._order_id, ttl_seconds=self._input.reservation_ttl_seconds),
            "hold the stock again if the hold lapsed",
            local=True,
        )

    def _since(self, patch: str) -> bool:
        """Whether this run takes ``patch``'s new code: yes since PATCHES_DECIDED_AT_START;
        runs started before ask where they did (of a free order only, for FREE_ORDERS_UNCHARGED)."""
        return self._patches_at_start or workflow.patched(patch)

    def _check_cancel(self) -> None:
        if self._cancel_requested:
            raise OrderCancelled()

    def _mirror(self, status: OrderStatus) -> None:
        """Keep the query's and the search attributes' idea of the status current."""
        self._status = status
        details = f"{status}; total {self._total}"
        if self._failure_code:
            details += f"; failure {self._failure_code}"
        workflow.set_current_details(details)
        if not self._local_steps:
            workflow.upsert_search_attributes(
                [
                    ORDER_STATUS.value_set(str(status)),
                    CUSTOMER_ID.value_set(self._user_id),
                    ORDER_TOTAL.value_set(self._total),
                ]
            )
            return
        if status in PASSING_STATUSES:
            return
        # One upsert per status operators filter on, carrying only what changed.
        updates: list[SearchAttributeUpdate[Any]] = []
        if self._indexed.get(ORDER_STATUS.name) != str(status):
            updates.append(ORDER_STATUS.value_set(str(status)))
        if self._indexed.get(CUSTOMER_ID.name) != self._user_id:
            updates.append(CUSTOMER_ID.value_set(self._user_id))
        if self._indexed.get(ORDER_TOTAL.name) != self._total:
            updates.append(ORDER_TOTAL.value_set(self._total))
        self._indexed[ORDER_STATUS.name] = str(status)
        self._indexed[CUSTOMER_ID.name] = self._user_id
        self._indexed[ORDER_TOTAL.name] = self._total
        if updates:
            workflow.upsert_search_attributes(updates)

    async def _step(
        self,
        name: str,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        queue: TaskQueue = TaskQueue.ORDERS,
        forever: bool = False,
        local: bool = False,
    ) -> Any:
        policy = self._input.steps
        try:
            if local and self._local_steps:
                return await workflow.execute_local_activity_method(
                    activity,
                    arg,
                    start_to_close_timeout=timedelta(seconds=policy.timeout_seconds),
                    retry_policy=RetryPolicy(
                        maximum_attempts=0 if forever else policy.attempts,
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=10),
                    ),
                    local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                    summary=f"{name}: {summary}",
                )
            return await workflow.execute_activity_method(
                activity,
                arg,
                task_queue=str(queue),
                # The attempt stops itself at the step's timeout (and counts it); past
                # the grace, or without heartbeats, its worker is taken for lost.
                start_to_close_timeout=timedelta(seconds=policy.timeout_seconds) + REPORT_GRACE,
                heartbeat_timeout=timedelta(seconds=policy.heartbeat_seconds),
                retry_policy=RetryPolicy(
                    maximum_attempts=0 if forever else policy.attempts,
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=10),
                ),
                summary=f"{name}: {summary}",
            )
        except FailureError as err:
            if not isinstance(err, ActivityError) and not (local and self._local_steps):
                raise
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                # The workflow was cancelled from Temporal while this step ran: the order
                # is undone as cancelled, not failed (see run()).
                raise asyncio.CancelledError() from err
            raise _failure(err, name) from err

    async def _compensate(
        self,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        queue: TaskQueue = TaskQueue.ORDERS,
    ) -> Any:
        """A compensation is retried until it succeeds (an operator can see it retrying)."""
        return await workflow.execute_activity_method(
            activity,
            arg,
            task_queue=str(queue),
            start_to_close_timeout=timedelta(seconds=self._input.steps.timeout_seconds),
            heartbeat_timeout=timedelta(seconds=self._input.steps.heartbeat_seconds),
            retry_policy=RetryPolicy(
                maximum_attempts=0,
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(minutes=1),
            ),
            summary=f"compensate: {summary}",
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
            await _despite_cancel(undo)
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
        await self._compensate(
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
        await self._send_email(template, f"notify-{status}", reason=detail)

    async def _send_email(self, template: str, name: str, *, reason: str | None = None) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return  # failed before we knew whom to write to (and with nothing to say)
        try:
            await self._email(snapshot, template, name, reason)
        except ActivityError as err:
            # A lost email never undoes an order; the ledger shows what was not sent.
            workflow.logger.warning("email %s for %s not sent: %s", template, self._order_id, err)

    async def _email(
        self, snapshot: OrderSnapshot, template: str, name: str, reason: str | None
    ) -> None:
        await workflow.execute_activity_method(
            EmailActivities.send_email,
            SendEmailInput(
                idempotency_key=f"{template}:{self._order_id}",
                template=template,
                to=snapshot.email,
                context={
                    "name": snapshot.name,
                    "order_id": self._order_id,
                    "total": snapshot.total,
                    "currency": snapshot.currency,
                    "lines": [ln.model_dump() for ln in snapshot.lines],
                    # The receipt's other rows, so that its figures add up.
                    "subtotal": snapshot.subtotal,
                    "automatic_discounts": snapshot.automatic_discounts,
                    "coupon_code": snapshot.coupon_code,
                    "coupon_discount": snapshot.coupon_discount,
                    "shipping": snapshot.shipping,
                    "tax": snapshot.tax,
                    "reason": reason or "",
                },
            ),
            task_queue=str(TaskQueue.NOTIFICATIONS),
            start_to_close_timeout=NOTIFICATION_START_TO_CLOSE,
            heartbeat_timeout=timedelta(seconds=self._input.steps.heartbeat_seconds),
            schedule_to_close_timeout=NOTIFICATION_SCHEDULE_TO_CLOSE,
            retry_policy=NOTIFICATION_RETRY,
            summary=f"{name}: email {template}",
        )


async def _despite_cancel(undo: Awaitable[None]) -> None:
    """Run ``undo`` to its end even if the workflow is cancelled from Temporal meanwhile.

    A cancel from Temporal cancels the workflow's main task where it waits: the running
    compensation's activity is told to stop and the rest never run. The undo runs in a
    task of its own, which that cancel does not reach (the SDK cancels the main task
    only); the main task waits for it again after a cancel. The one cancel Temporal
    delivers is then spent, and the workflow ends as the undo does."""
    task = asyncio.ensure_future(undo)
    while True:
        try:
            await asyncio.shield(task)
            return
        except asyncio.CancelledError:
            if task.done():
                raise
            workflow.logger.info("cancelled from Temporal while undoing: the undo goes on")
