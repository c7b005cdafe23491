"""SQLModel tables, one module per domain. Importing this package registers them all."""

from models.base import metadata
from models.outbox import OutboxEvent

__all__ = ["OutboxEvent", "metadata"]
