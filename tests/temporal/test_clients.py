"""The workflow clients against the Temporal dev server: the durable start (one-shot and
signal-with-start), the id schemes, message names, and how Temporal's errors read."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus

from cli.stack.process import free_port
from core.db import SessionFactory, create_session_factory, transaction
from core.errors import DependencyUnavailable
from core.settings import Settings
from models.workflow_starts import WorkflowStart
from temporal.clients import (
    CartReminderWorkflows,
    OnboardingWorkflows,
    OrderWorkflows,
    TemporalConnection,
    WorkflowStarts,
)
from temporal.clients.connection import WorkflowNotFound
from temporal.clients.orders import CancelOutcome
from workflows.carts import CartAbandonmentWorkflow
from workflows.onboarding import UserOnboardingWorkflow
from workflows.orders import OrderWorkflow
from workflows.types.carts import (
    CART_ABANDONMENT_WORKFLOW,
    CART_CHANGED_SIGNAL,
    CART_CLOSED_SIGNAL,
    DEADLINE_QUERY,
    AbandonmentInput,
)
from workflows.types.onboarding import USER_ONBOARDING_WORKFLOW, OnboardingInput
from workflows.types.orders import (
    CANCEL_UPDATE,
    ORDER_WORKFLOW,
    PAYMENT_WEBHOOK_SIGNAL,
    STATUS_QUERY,
    CancelRequest,
    OrderInput,
    PaymentWebhook,
)


def test_the_clients_name_what_the_workflows_define() -> None:
    """The clients address workflows by name (so the API loads no workflow module):
    the names must be the ones the workflows register, and recorded histories use."""
    orders = workflow._Definition.must_from_class(OrderWorkflow)
    assert orders.name == ORDER_WORKFLOW
    assert STATUS_QUERY in orders.queries
    assert CANCEL_UPDATE in orders.updates
    assert PAYMENT_WEBHOOK_SIGNAL in orders.signals
    carts = workflow._Definition.must_from_class(CartAbandonmentWorkflow)
    assert carts.name == CART_ABANDONMENT_WORKFLOW
    assert {CART_CHANGED_SIGNAL, CART_CLOSED_SIGNAL} <= set(carts.signals)
    assert DEADLINE_QUERY in carts.queries
    onboarding = workflow._Definition.must_from_class(UserOnboardingWorkflow)
    assert onboarding.name == USER_ONBOARDING_WORKFLOW


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)


def _reminder(cart_id: str, delay: float = 3600) -> AbandonmentInput:
    return AbandonmentInput(
        cart_id=cart_id, user_id="user_x", email="x@example.com", name="X", delay_seconds=delay
    )


async def _row(sessions: SessionFactory, workflow_id: str) -> WorkflowStart | None:
    async with sessions() as session:
        result = await session.exec(
            select(WorkflowStart).where(WorkflowStart.workflow_id == workflow_id)
        )
        return result.first()


async def test_a_one_shot_start_never_runs_twice(
    temporal_client: Client, sessions: SessionFactory
) -> None:
    starts = WorkflowStarts(TemporalConnection.of(temporal_client), sessions)
    user_id = f"user_{uuid4().hex[:10]}"
    # No worker serves this queue: the workflow is started, not run.
    async with transaction(sessions) as session:
        row = OnboardingWorkflows.request_start(
            session, OnboardingInput(user_id=user_id, email="a@example.com", name="A")
        )
        row.task_queue = f"idle-{uuid4().hex[:8]}"
    assert row.workflow_id == f"user-onboarding-{user_id}"
    assert await starts.start(row)
    handle = temporal_client.get_workflow_handle(row.workflow_id)
    first = await handle.describe()
    assert first.status == WorkflowExecutionStatus.RUNNING
    stored = await _row(sessions, row.workflow_id)
    assert stored is not None
    assert stored.started_at is not None
    await handle.terminate("test")
    # Starting it again (e.g. the relay after a lost answer) is harmless, even once the
    # workflow has finished: no second run.
    assert await starts.start(row)
    again = await handle.describe()
    assert again.run_id == first.run_id
    assert again.status == WorkflowExecutionStatus.TERMINATED


async def test_a_reminder_is_requested_again_by_each_change_and_may_run_again(
    temporal_client: Client, sessions: SessionFactory
) -> None:
    starts = WorkflowStarts(TemporalConnection.of(temporal_client), sessions)
    cart_id = f"cart_{uuid4().hex[:10]}"
    queue = f"idle-{uuid4().hex[:8]}"
    async with transaction(sessions) as session:
        first = await CartReminderWorkflows.request_start(session, _reminder(cart_id))
    async with transaction(sessions) as session:
        second = await CartReminderWorkflows.request_start(session, _reminder(cart_id, 60))
    assert second.id == first.id  # one row per cart, set pending again
    assert second.created_at > first.created_at
    stored = await _row(sessions, f"cart-abandonment-{cart_id}")
    assert stored is not None
    assert (stored.started_at, stored.input["delay_seconds"]) == (None, 60)

    # The first request's start lands late: the row stays owed to the second one.
    # (No worker serves this queue: the workflow is started, not run.)
    first.task_queue = second.task_queue = queue
    assert await starts.start(first)
    stored = await _row(sessions, second.workflow_id)
    assert stored is not None
    assert stored.started_at is None
    assert await starts.start(second)
    stored = await _row(sessions, second.workflow_id)
    assert stored is not None
    assert stored.started_at is not None

    # Both starts reached one running workflow (each a cart_changed signal).
    handle = temporal_client.get_workflow_handle(second.workflow_id)
    run = await handle.describe()
    assert run.status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test")
    # After a run finished, a new change starts a new run.
    async with transaction(sessions) as session:
        third = await CartReminderWorkflows.request_start(session, _reminder(cart_id))
    third.task_queue = queue
    assert await starts.start(third)
    rerun = await handle.describe()
    assert rerun.run_id != run.run_id
    assert rerun.status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test")


async def test_closing_a_cart_forgets_an_owed_reminder(sessions: SessionFactory) -> None:
    cart_id = f"cart_{uuid4().hex[:10]}"
    async with transaction(sessions) as session:
        await CartReminderWorkflows.request_start(session, _reminder(cart_id))
    assert await _row(sessions, f"cart-abandonment-{cart_id}") is not None
    async with transaction(sessions) as session:
        await CartReminderWorkflows.forget_owed_start(session, cart_id)
    assert await _row(sessions, f"cart-abandonment-{cart_id}") is None


async def test_unknown_workflows_read_as_not_running(
    temporal_client: Client, sessions: SessionFactory
) -> None:
    connection = TemporalConnection.of(temporal_client)
    orders = OrderWorkflows(connection, WorkflowStarts(connection, sessions))
    order_id = f"ord_{uuid4().hex[:10]}"
    with pytest.raises(WorkflowNotFound):
        await orders.status(order_id)
    webhook = PaymentWebhook(event_id="evt_x", type="payment_intent.succeeded", intent_id="pi_x")
    assert await orders.notify_payment(order_id, webhook) is False
    assert await orders.cancel(order_id, CancelRequest()) is CancelOutcome.NOT_RUNNING
    await CartReminderWorkflows(connection).stop(f"cart_{uuid4().hex[:10]}")  # no error


async def test_an_owed_order_start_is_made_before_cancelling(
    temporal_client: Client, sessions: SessionFactory
) -> None:
    """A cancel that finds no workflow starts the owed one first and asks it again."""
    connection = TemporalConnection.of(temporal_client)
    starts = WorkflowStarts(connection, sessions)
    order_id = f"ord_{uuid4().hex[:10]}"
    async with transaction(sessions) as session:
        row = OrderWorkflows.request_start(session, OrderInput(order_id=order_id, user_id="u"))
        row.task_queue = f"idle-{uuid4().hex[:8]}"  # nobody runs it: the update waits
    assert row.workflow_id == f"order-{order_id}"
    with pytest.raises(DependencyUnavailable):
        # Accepting an update needs a worker; the start itself was made and recorded.
        await OrderWorkflows(connection, starts).cancel(order_id, CancelRequest())
    stored = await _row(sessions, row.workflow_id)
    assert stored is not None
    assert stored.started_at is not None
    handle = temporal_client.get_workflow_handle(row.workflow_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test")


async def test_temporal_away_leaves_the_start_to_the_relay(
    settings: Settings, sessions: SessionFactory
) -> None:
    away = Settings.model_validate(
        settings.model_dump() | {"temporal_address": f"127.0.0.1:{free_port()}"}
    )
    connection = TemporalConnection.from_settings(away)
    starts = WorkflowStarts(connection, sessions)
    cart_id = f"cart_{uuid4().hex[:10]}"
    async with transaction(sessions) as session:
        row = await CartReminderWorkflows.request_start(session, _reminder(cart_id))
    assert await starts.start(row) is False
    stored = await _row(sessions, row.workflow_id)
    assert stored is not None
    assert (stored.started_at, stored.attempts) == (None, 1)
    assert stored.last_error
    orders = OrderWorkflows(connection, starts)
    webhook = PaymentWebhook(event_id="evt_x", type="payment_intent.succeeded", intent_id="pi_x")
    with pytest.raises(DependencyUnavailable):
        await orders.notify_payment("ord_away", webhook)
    await CartReminderWorkflows(connection).stop(cart_id)  # best effort: logged, not raised
    async with transaction(sessions) as session:
        await CartReminderWorkflows.forget_owed_start(session, cart_id)
