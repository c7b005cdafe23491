"""``OutboxPruneWorkflow``'s input and result, and its activity's."""

from __future__ import annotations

from pydantic import BaseModel, Field

# Recorded in every history and in the schedule, so never renamed.
OUTBOX_PRUNE_WORKFLOW = "OutboxPruneWorkflow"


class PruneInput(BaseModel):
    # Rows deleted per activity call (one transaction each).
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # A run stops after this many batches; the next run carries on.
    max_batches: int = Field(default=100, ge=1, le=1000)


class PruneResult(BaseModel):
    deleted: int
    batches: int


class PruneBatchInput(BaseModel):
    limit: int = Field(default=1000, ge=1, le=10_000)


class PruneBatchResult(BaseModel):
    deleted: int
