"""Outbox, webhook delivery and workflow start pruning, run by ``OutboxPruneWorkflow``
from the ``outbox-prune`` schedule."""

from __future__ import annotations

from temporalio import activity

from core.db import SessionFactory, transaction
from services.events.pruning import Retention, prune_outbox
from workflows.types.pruning import PruneBatchInput, PruneBatchResult


class OutboxPruneActivities:
    def __init__(self, sessions: SessionFactory, retention: Retention) -> None:
        self._sessions = sessions
        # Read from the worker's settings at each run, not frozen into the schedule.
        self._retention = retention

    @activity.defn(name="events.prune_outbox_batch")
    async def prune_outbox_batch(self, input: PruneBatchInput) -> PruneBatchResult:
        """One batch in one transaction. Idempotent: a row deleted is not found again."""
        async with transaction(self._sessions) as session:
            deleted = await prune_outbox(session, retention=self._retention, limit=input.limit)
        return PruneBatchResult(deleted=deleted)
