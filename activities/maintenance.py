"""Housekeeping activities run by schedules."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client

from core.db import SessionFactory
from temporal.clients.starts import relay_pending


class RelayInput(BaseModel):
    # Rows younger than this are still being started by the request that wrote them.
    older_than_seconds: float = 30.0
    limit: int = 200


class RelayResult(BaseModel):
    started: int


class MaintenanceActivities:
    def __init__(self, client: Client, sessions: SessionFactory) -> None:
        self._client = client
        self._sessions = sessions

    @activity.defn(name="maintenance.relay_workflow_starts")
    async def relay_workflow_starts(self, input: RelayInput) -> RelayResult:
        """Idempotent: a workflow id that exists already counts as started."""
        started = await relay_pending(
            self._client,
            self._sessions,
            older_than=timedelta(seconds=input.older_than_seconds),
            limit=input.limit,
        )
        return RelayResult(started=started)
