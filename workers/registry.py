"""Which workflows and activities run on which task queue.

``shop worker`` and the tests both build workers from this one table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.accounts import AccountActivities
from activities.analytics import AnalyticsActivities
from activities.email import EmailActivities
from activities.events import EventActivities
from activities.fulfillment import FulfillmentActivities
from activities.inventory import InventoryActivities
from activities.maintenance import MaintenanceActivities
from activities.orders import OrderActivities
from activities.payments import PaymentActivities
from activities.pruning import OutboxPruneActivities
from activities.returns import ReturnActivities
from activities.shipping import ShippingActivities
from activities.system import SystemActivities
from activities.webhooks import WebhookActivities
from core.db import SessionFactory
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from integrations.crm.factory import build_crm
from integrations.email.sender import EmailSender
from integrations.email.templates import EmailTemplates
from integrations.marketing.factory import build_marketing_client
from integrations.payments.stripe import StripeGateway
from integrations.shipping.factory import build_shipping_provider
from services.analytics import AnalyticsRecorder
from services.catalog.indexing import SearchIndexing
from services.email import EmailService
from services.events.delivery import DeliveryService
from services.events.pruning import Retention
from services.events.registry import HandlerDeps, build_subscribers
from services.events.subscribers import Subscriber
from services.fulfillment.shipments import ShipmentService
from services.fulfillment.tracking import ShipmentTracking
from services.payments import PaymentService
from services.returns import ReturnLabels, ReturnSteps
from services.webhooks.sending import WebhookSender
from temporal.clients import FulfillmentWorkflows, TemporalConnection
from temporal.clients.webhooks import WebhookWorkflows
from temporal.queues import TaskQueue
from workflows.carts import CartAbandonmentWorkflow
from workflows.events import EventBatchWorkflow, EventDeliveryWorkflow, EventFanoutWorkflow
from workflows.fulfillment import FulfillmentWorkflow
from workflows.maintenance import (
    AnalyticsRollupWorkflow,
    OutboxPruneWorkflow,
    ReservationSweepWorkflow,
    WorkflowStartRelayWorkflow,
)
from workflows.onboarding import UserOnboardingWorkflow
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipments import ShipmentWorkflow
from workflows.system import StackProbeWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow


@dataclass(frozen=True)
class WorkerDeps:
    """What activity classes are built with. One set per worker process."""

    settings: Settings
    client: Client
    engine: AsyncEngine
    sessions: SessionFactory
    redis: Redis
    email_sender: EmailSender
    # The process's one outgoing client for webhook endpoints.
    webhook_http: httpx.AsyncClient
    # The process's one search-index writer (None: SEARCH_INDEX=false).
    search_index: SearchIndexing | None = None


@dataclass(frozen=True)
class QueueComponents:
    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]]


def email_service(deps: WorkerDeps) -> EmailService:
    return EmailService(
        deps.sessions,
        deps.email_sender,
        EmailTemplates(),
        deps.settings.email_from,
        deps.settings.resolved_email_activity_lag,
    )


def default_subscribers(deps: WorkerDeps) -> tuple[Subscriber, ...]:
    """Every subscriber in the code (``services.events.registry``)."""
    tracing = tracing_for(deps.settings, ProcessRole.WORKER)  # the providers' calls
    return build_subscribers(
        HandlerDeps(
            settings=deps.settings,
            sessions=deps.sessions,
            redis=deps.redis,
            email=email_service(deps),
            crm=build_crm(deps.settings, tracing) if deps.settings.crm_enabled else None,
            marketing=build_marketing_client(deps.settings, tracing),
            fulfillments=FulfillmentWorkflows(TemporalConnection.of(deps.client)),
            webhooks=WebhookWorkflows(TemporalConnection.of(deps.client), deps.settings),
            search_index=deps.search_index,
        )
    )


def components_for(
    queue: TaskQueue, deps: WorkerDeps, subscribers: Sequence[Subscriber] = ()
) -> QueueComponents:
    """``subscribers``: the handlers the events queue delivers to."""
    # The worker's spans (cached per configuration): delivery spans and provider calls.
    tracing = tracing_for(deps.settings, ProcessRole.WORKER)
    workflows: list[type] = []
    activities: list[Callable[..., Any]] = [
        SystemActivities(deps.engine, deps.redis, str(queue)).probe
    ]
    if queue is TaskQueue.DEFAULT:
        workflows += [StackProbeWorkflow, WorkflowStartRelayWorkflow, ReservationSweepWorkflow]
        activities.append(MaintenanceActivities(deps.client, deps.sessions).relay_workflow_starts)
        activities.append(InventoryActivities(deps.sessions).sweep_expired_reservations)
        workflows.append(OutboxPruneWorkflow)
        activities.append(
            OutboxPruneActivities(deps.sessions, Retention.of(deps.settings)).prune_outbox_batch
        )
        workflows.append(AnalyticsRollupWorkflow)
        activities.append(AnalyticsActivities(deps.sessions).refresh_rollups)
    if queue is TaskQueue.NOTIFICATIONS:
        emails = email_service(deps)
        workflows += [UserOnboardingWorkflow, CartAbandonmentWorkflow]
        activities.append(EmailActivities(emails, deps.sessions).send_email)
        activities.append(AccountActivities(deps.sessions).contact)
    analytics = AnalyticsRecorder(deps.settings.analytics_enabled)
    if queue is TaskQueue.ORDERS:
        orders = OrderActivities(deps.sessions, deps.settings, analytics)
        workflows.append(OrderWorkflow)
        activities += [
            orders.validate,
            orders.reserve_stock,
            orders.extend_reservation,
            orders.reserve_again,
            orders.confirm,
            orders.commit_stock,
            orders.queue_fulfillment,
            orders.release_stock,
            orders.undo_confirm,
            orders.close,
        ]
        fulfilment = FulfillmentActivities(deps.sessions)
        workflows.append(FulfillmentWorkflow)
        activities += [
            fulfilment.open,
            fulfilment.create_shipment,
            fulfilment.hold,
            fulfilment.release,
            fulfilment.cancel,
        ]
        carrier = build_shipping_provider(deps.settings, tracing)
        returns = ReturnActivities(
            ReturnLabels(deps.sessions, deps.settings, carrier),
            ReturnSteps(deps.sessions, StripeGateway.from_settings(deps.settings, tracing)),
        )
        workflows.append(ReturnWorkflow)
        activities += [
            returns.issue_label,
            returns.decline,
            returns.cancel,
            returns.receive,
            returns.refund,
            returns.close,
            returns.read,
        ]
        shipping = ShippingActivities(
            ShipmentService(deps.sessions, carrier, deps.settings),
            ShipmentTracking(deps.sessions),
        )
        workflows.append(ShipmentWorkflow)
        activities += [
            shipping.book_label,
            shipping.record_update,
            shipping.record_updates,
            shipping.mark_delayed,
            shipping.refund_label,
        ]
    if queue is TaskQueue.PAYMENTS:
        payments = PaymentActivities(
            PaymentService(
                deps.sessions,
                StripeGateway.from_settings(deps.settings, tracing),
                deps.settings,
                analytics,
            )
        )
        activities += [
            payments.authorize,
            payments.refresh,
            payments.capture,
            payments.void_or_refund,
        ]
    if queue is TaskQueue.EVENTS:
        events = EventActivities(DeliveryService(deps.sessions, deps.redis, subscribers, tracing))
        # The one-subscriber workflow stays for the runs it still has in flight.
        workflows += [EventBatchWorkflow, EventFanoutWorkflow, EventDeliveryWorkflow]
        activities += [events.deliver, events.dead_letter]
        webhooks = WebhookActivities(WebhookSender(deps.sessions, deps.webhook_http, deps.settings))
        workflows.append(WebhookDeliveryWorkflow)
        activities += [webhooks.send, webhooks.give_up]
    return QueueComponents(workflows=workflows, activities=activities)
