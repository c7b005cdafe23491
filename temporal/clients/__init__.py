"""One typed client per workflow family; the API, services, activities and the CLI talk
to Temporal through these only.

Each owns its workflow ids, task queue and message names, maps Temporal's errors to ours
(``WorkflowNotFound``, ``DependencyUnavailable``) and waits a bounded time. Every start
goes through a ``workflow_starts`` row (``starts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.db import SessionFactory
from temporal.clients.carts import CartReminderWorkflows
from temporal.clients.connection import TemporalConnection
from temporal.clients.fulfillment import FulfillmentWorkflows
from temporal.clients.onboarding import OnboardingWorkflows
from temporal.clients.orders import OrderWorkflows
from temporal.clients.returns import ReturnWorkflows
from temporal.clients.shipments import ShipmentWorkflows
from temporal.clients.starts import WorkflowStarts

__all__ = [
    "CartReminderWorkflows",
    "FulfillmentWorkflows",
    "OnboardingWorkflows",
    "OrderWorkflows",
    "ReturnWorkflows",
    "ShipmentWorkflows",
    "TemporalConnection",
    "WorkflowClients",
    "WorkflowStarts",
]


@dataclass
class WorkflowClients:
    """The clients a process holds, over one connection."""

    connection: TemporalConnection
    sessions: SessionFactory
    starts: WorkflowStarts = field(init=False)
    orders: OrderWorkflows = field(init=False)
    cart_reminders: CartReminderWorkflows = field(init=False)
    fulfillments: FulfillmentWorkflows = field(init=False)
    returns: ReturnWorkflows = field(init=False)
    shipments: ShipmentWorkflows = field(init=False)

    def __post_init__(self) -> None:
        self.starts = WorkflowStarts(self.connection, self.sessions)
        self.orders = OrderWorkflows(self.connection, self.starts)
        self.cart_reminders = CartReminderWorkflows(self.connection)
        self.fulfillments = FulfillmentWorkflows(self.connection)
        self.returns = ReturnWorkflows(self.connection, self.starts)
        self.shipments = ShipmentWorkflows(self.connection)
