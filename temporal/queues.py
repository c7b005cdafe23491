"""Task-queue names. Workers for a queue can run in any number of processes and hosts."""

from __future__ import annotations

from enum import StrEnum


class TaskQueue(StrEnum):
    ORDERS = "orders"
    PAYMENTS = "payments"
    NOTIFICATIONS = "notifications"
    DEFAULT = "default"


ALL_QUEUES: tuple[TaskQueue, ...] = tuple(TaskQueue)
