"""The workflow-start ledger does not grow for ever: the ``outbox-prune`` schedule's batch
deletes started rows past ``WORKFLOW_START_RETENTION_DAYS``, of every kind (``request``,
``request_again``, ``request_signal``, ``add_once``), and keeps every start still owed
(pending, or failed and retried by the relay) and every row started within the
retention. A kind requested again after its row went is recorded and owed again.

On the real PostgreSQL, in the test's transaction (rolled back). The rows are dated in
1999 and the batch runs as of then, so that no other test's row is old enough to go."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.settings import Settings
from models.workflow_starts import WorkflowStart
from services import workflow_starts
from services.events.pruning import Retention, prune_outbox
from services.workflow_starts import WorkflowStartRepository
from tests.query_plans import statement_plans

NOW = datetime(1999, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
RETENTION = Retention(
    outbox=30 * DAY, webhook_delivered=30 * DAY, webhook_failed=30 * DAY, workflow_starts=30 * DAY
)


class Input(BaseModel):
    n: int = 0


def _id(kind: str) -> str:
    return f"retention-{kind}-{uuid.uuid4().hex}"


async def _dated(
    session: AsyncSession, workflow_id: str, *, created: timedelta, started: timedelta | None
) -> None:
    """The row of ``workflow_id`` requested ``created`` before ``NOW`` and started
    ``started`` before it (None: not started)."""
    await session.exec(
        update(WorkflowStart)
        .where(col(WorkflowStart.workflow_id) == workflow_id)
        .values(
            created_at=NOW - created,
            started_at=None if started is None else NOW - started,
        )
    )


async def _plain(session: AsyncSession, workflow_id: str) -> None:
    workflow_starts.request(
        session, workflow_type="W", workflow_id=workflow_id, task_queue="q", input=Input()
    )
    await session.flush()


async def _again(session: AsyncSession, workflow_id: str) -> WorkflowStart:
    return await workflow_starts.request_again(
        session,
        workflow_type="W",
        workflow_id=workflow_id,
        task_queue="q",
        input=Input(),
        signal="changed",
    )


async def _signal(session: AsyncSession, workflow_id: str) -> None:
    await workflow_starts.request_signal(
        session, workflow_type="W", workflow_id=workflow_id, task_queue="q", signal="retry"
    )


def _started_once(workflow_id: str) -> WorkflowStart:
    """As a fulfilment's or a webhook delivery's start is written (``add_once``)."""
    return WorkflowStart(
        workflow_type="W",
        workflow_id=workflow_id,
        task_queue="q",
        input={},
        started_at=NOW,
    )


async def test_started_rows_past_the_retention_go_and_owed_ones_stay(
    db_sessions: SessionFactory,
) -> None:
    ids = {
        kind: _id(kind)
        for kind in (
            "plain-started",
            "plain-recent",
            "plain-pending",
            "plain-failed",
            "again-started",
            "again-requested-again",
            "signal-started",
            "signal-pending",
            "once-started",
        )
    }
    old, recent, long_ago = 40 * DAY, 10 * DAY, 400 * DAY
    async with transaction(db_sessions) as session:
        starts = WorkflowStartRepository(session)
        for kind in ("plain-started", "plain-recent", "plain-pending", "plain-failed"):
            await _plain(session, ids[kind])
        await _dated(session, ids["plain-started"], created=old, started=old)
        await _dated(session, ids["plain-recent"], created=recent, started=recent)
        await _dated(session, ids["plain-pending"], created=long_ago, started=None)
        await _dated(session, ids["plain-failed"], created=long_ago, started=None)
        failed = await starts.owed(ids["plain-failed"])
        assert failed is not None
        await starts.mark_failed(failed.id, "Temporal unreachable")

        await _again(session, ids["again-started"])
        await _dated(session, ids["again-started"], created=old, started=old)
        await _again(session, ids["again-requested-again"])
        await _dated(session, ids["again-requested-again"], created=old, started=old)
        await _again(session, ids["again-requested-again"])  # pending again

        for kind in ("signal-started", "signal-pending"):
            await _signal(session, ids[kind])
        await _dated(session, ids["signal-started"], created=old, started=old)
        await _dated(session, ids["signal-pending"], created=long_ago, started=None)

        assert await starts.add_once(_started_once(ids["once-started"]))
        await _dated(session, ids["once-started"], created=old, started=old)

    async with transaction(db_sessions) as session:
        pruned = await prune_outbox(session, retention=RETENTION, limit=1000, now=NOW)
    assert pruned == 4

    async with db_sessions() as session:
        rows = await session.exec(
            select(WorkflowStart.workflow_id).where(
                col(WorkflowStart.workflow_id).in_(list(ids.values()))
            )
        )
        left = set(rows.all())
    gone = {"plain-started", "again-started", "signal-started", "once-started"}
    assert left == {ids[kind] for kind in ids if kind not in gone}

    # Requested again once its row went: owed again (and the relay starts it), or, for
    # a start made in the relay's delivery, recorded again.
    async with transaction(db_sessions) as session:
        starts = WorkflowStartRepository(session)
        await _again(session, ids["again-started"])
        await _signal(session, ids["signal-started"])
        assert await starts.owed(ids["again-started"]) is not None
        assert await starts.owed(ids["signal-started"]) is not None
        assert await starts.add_once(_started_once(ids["once-started"]))

    # Nothing else is old enough.
    async with transaction(db_sessions) as session:
        assert await prune_outbox(session, retention=RETENTION, limit=1000, now=NOW) == 0


def test_the_retention_is_a_setting() -> None:
    assert Retention.of(Settings()).workflow_starts == 30 * DAY
    retention = Retention.of(Settings(workflow_start_retention_days=90))
    assert retention.workflow_starts == 90 * DAY


async def test_the_retention_and_the_erasure_read_the_starts_by_index(
    db_session: AsyncSession,
) -> None:
    """Each retention batch and each erasure is an index scan, not a read of every start
    (migration a7c0de140029): the statements match the partial indexes' predicates."""
    repository = WorkflowStartRepository(db_session)
    await _plain(db_session, _id("plan"))
    pruning = await statement_plans(
        db_session, lambda: repository.delete_started_before(NOW, limit=2)
    )
    assert any("workflow_starts_started_idx" in plan for plan in pruning), pruning
    erasing = await statement_plans(
        db_session, lambda: repository.blank_personal("usr_plan", ("email", "name"))
    )
    assert any("workflow_starts_user_idx" in plan for plan in erasing), erasing
