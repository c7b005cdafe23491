"""Task-queue names. Workers for a queue can run in any number of processes and hosts."""

from __future__ import annotations

from enum import StrEnum


class TaskQueue(StrEnum):
    ORDERS = "orders"
    PAYMENTS = "payments"
    NOTIFICATIONS = "notifications"
    DEFAULT = "default"
    # Outbox event deliveries; a worker serving it also runs the outbox relay.
    EVENTS = "events"


ALL_QUEUES: tuple[TaskQueue, ...] = tuple(TaskQueue)
