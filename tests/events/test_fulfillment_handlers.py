"""Fulfilment's subscribers: ``fulfillment.order_ready`` starts the order's
``FulfillmentWorkflow`` once (a failed start fails the delivery, recording nothing), and
``fulfillment.on_hold`` emails the warehouse once however often it is delivered."""

from __future__ import annotations

import pytest
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus

from core.db import SessionFactory, transaction
from core.errors import DependencyUnavailable
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from models.events import EventReceipt
from models.outbox import OutboxEvent
from models.workflow_starts import WorkflowStart
from services.email import EmailService
from services.events.handlers.fulfillment import fulfillment_hold_alert, fulfillment_starter
from services.events.handling import handle_once
from services.fulfillment.service import FulfillmentService
from temporal.clients import FulfillmentWorkflows, TemporalConnection
from tests.events.conftest import MailApi
from tests.factories import unique_email
from tests.fulfillment.factories import queued_order
from workflows.types.fulfillment import fulfillment_workflow_id


async def _order_ready(sessions: SessionFactory) -> tuple[str, str]:
    async with transaction(sessions) as session:
        order, _ = await queued_order(session)
        event = await publish(
            session,
            EventType.FULFILLMENT_ORDER_READY,
            order.id,
            {"orderId": order.id, "items": [], "priority": 55, "priorityLevel": "high"},
        )
        return order.id, event.id


async def _starts(sessions: SessionFactory, workflow_id: str) -> int:
    async with sessions() as session:
        rows = await session.exec(
            select(WorkflowStart).where(col(WorkflowStart.workflow_id) == workflow_id)
        )
        return len(rows.all())


async def test_order_ready_starts_one_fulfilment_workflow_with_the_priority(
    db_sessions: SessionFactory, settings: Settings, temporal_client: Client
) -> None:
    starter = fulfillment_starter(
        FulfillmentWorkflows(TemporalConnection.of(temporal_client)), settings
    )
    order_id, event_id = await _order_ready(db_sessions)
    workflow_id = fulfillment_workflow_id(order_id)
    assert await handle_once(db_sessions, starter, event_id) is True
    assert await handle_once(db_sessions, starter, event_id) is False
    handle = temporal_client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
        assert described.workflow_type == "FulfillmentWorkflow"
        assert described.task_queue == "orders"
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        assert b'"priority":55' in started.input.payloads[0].data.replace(b" ", b"")
        assert await _starts(db_sessions, workflow_id) == 1
        # Run again without the receipt (a commit lost after the start): nothing doubles.
        async with transaction(db_sessions) as session:
            receipt = await session.get(EventReceipt, (event_id, starter.name))
            assert receipt is not None
            await session.delete(receipt)
        assert await handle_once(db_sessions, starter, event_id) is True
        assert await _starts(db_sessions, workflow_id) == 1
        runs = [w async for w in temporal_client.list_workflows(f'WorkflowId = "{workflow_id}"')]
        assert len(runs) == 1
    finally:
        # Its order lives only in this test's rolled-back transaction.
        if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")


async def test_a_start_that_fails_fails_the_delivery_and_records_nothing(
    db_sessions: SessionFactory, settings: Settings
) -> None:
    unreachable = settings.model_copy(update={"temporal_address": "127.0.0.1:9"})
    starter = fulfillment_starter(
        FulfillmentWorkflows(TemporalConnection.from_settings(unreachable)), settings
    )
    order_id, event_id = await _order_ready(db_sessions)
    with pytest.raises(DependencyUnavailable):
        await handle_once(db_sessions, starter, event_id)
    assert await _starts(db_sessions, fulfillment_workflow_id(order_id)) == 0
    async with db_sessions() as session:
        assert await session.get(EventReceipt, (event_id, starter.name)) is None


async def _held(sessions: SessionFactory, reason: str) -> tuple[str, str, str]:
    async with transaction(sessions) as session:
        order, _ = await queued_order(session)
        service = FulfillmentService(session)
        opened = await service.open(order.id, 0, "normal")
        await service.hold(opened.fulfillment_id, reason)
        event_id = (
            await session.exec(
                select(OutboxEvent.id).where(
                    OutboxEvent.aggregate_id == order.id,
                    OutboxEvent.type == EventType.FULFILLMENT_ON_HOLD,
                )
            )
        ).one()
        return order.id, opened.fulfillment_id, event_id


async def test_the_warehouse_gets_one_email_per_hold_with_the_reason(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    to = unique_email("warehouse")
    settings = mail_api.settings.model_copy(update={"fulfillment_alert_email": to})
    alert = fulfillment_hold_alert(emails, settings)
    order_id, fulfillment_id, event_id = await _held(db_sessions, "return_to_sender")
    assert await handle_once(db_sessions, alert, event_id) is True
    assert await handle_once(db_sessions, alert, event_id) is False
    [mail] = await mail_api.mailbox(to)
    assert mail["subject"] == f"On hold: fulfilment {fulfillment_id} (order {order_id})"
    assert "Reason: return_to_sender" in mail["text"]
    assert f"{settings.api_base_url}/api/admin/fulfillments/{fulfillment_id}" in mail["text"]


async def test_without_a_fulfilment_address_the_inventory_team_is_alerted(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    to = unique_email("inventory")
    settings = mail_api.settings.model_copy(
        update={"fulfillment_alert_email": None, "inventory_alert_email": to}
    )
    alert = fulfillment_hold_alert(emails, settings)
    _, fulfillment_id, event_id = await _held(db_sessions, "address to confirm")
    assert await handle_once(db_sessions, alert, event_id) is True
    [mail] = await mail_api.mailbox(to)
    assert fulfillment_id in mail["subject"]
