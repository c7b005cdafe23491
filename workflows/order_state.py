"""``OrderWorkflow``'s state, and what reads or changes it from outside the run: the
``status`` query, the payment webhook signal, the ``cancel`` update (and its validator),
and the status mirrored in the search attributes and in the UI's current details.

``OrderWorkflow`` (``workflows/orders.py``) is this class with the pipeline that moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.money import Money
    from models.orders import CANCELLABLE_STATUSES, OrderSnapshot, OrderStatus
    from temporal.search_attributes import CUSTOMER_ID, ORDER_STATUS, ORDER_TOTAL
    from workflows.order_steps import OrderCancelled, OrderFailed, OrderSteps
    from workflows.types.orders import (
        DECISIVE_WEBHOOKS,
        PAYMENT_WEBHOOK_SIGNAL,
        STATUS_QUERY,
        CancelRequest,
        OrderInput,
        OrderView,
        PaymentWebhook,
    )

# Statuses an order passes through in a moment on its way to the next: since
# LOCAL_DATABASE_STEPS the search attributes skip them (the query still has them).
PASSING_STATUSES = frozenset({OrderStatus.RESERVED, OrderStatus.PAYMENT_AUTHORIZED})
T = TypeVar("T")


class OrderState:
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
        self._steps = OrderSteps(order_id="", policy=self._input.steps, local_steps=False)
        self._snapshot: OrderSnapshot | None = None
        self._local_steps = False
        self._held_at: datetime | None = None  # when check-inventory took the hold
        self._patches_at_start = False  # PATCHES_DECIDED_AT_START
        self._waits_out_outages = False  # AUTHORISE_WAITS_OUT_OUTAGES
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

    # --- the state as the run sees it -------------------------------------------------

    def _since(self, patch: str) -> bool:
        """Whether this run takes ``patch``'s new code: yes since PATCHES_DECIDED_AT_START;
        runs started before ask where they did (of a free order only, for FREE_ORDERS_UNCHARGED)."""
        return self._patches_at_start or workflow.patched(patch)

    def _check_cancel(self) -> None:
        if self._cancel_requested:
            raise OrderCancelled()

    async def _unless_cancelled(self, step: Awaitable[T]) -> T:
        """``step``'s result, or ``OrderCancelled`` as soon as the customer cancels (the
        step is then cancelled; the compensations undo whatever it did)."""
        task = asyncio.ensure_future(step)
        try:
            await workflow.wait_condition(lambda: task.done() or self._cancel_requested)
        except asyncio.CancelledError:
            task.cancel()  # cancelled from Temporal: the step with it
            raise
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OrderFailed):
            await task
        raise OrderCancelled()

    def _mirror(self, status: OrderStatus) -> None:
        """Keep the query's and the search attributes' idea of the status current."""
        self._status = status
        details = f"{status}"
        if self._snapshot is not None:  # priced: the total as the shopper reads it
            details += f"; total {Money(self._total, self._snapshot.currency).format()}"
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
