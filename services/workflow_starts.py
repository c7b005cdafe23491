"""Starting workflows reliably: record the start with the change, start after commit.

``request`` adds a row in the caller's transaction. After the commit the API starts it
at once (``temporal.clients.starts``); if Temporal is unreachable the row stays pending
and the relay (run every minute by a Temporal Schedule) starts it later. A workflow id
that already exists counts as started, so a start is never doubled.

``request_again`` is the signal-with-start form, for a workflow that every change wakes
(the cart reminder): one row per workflow id, set pending again by each change.
``request_signal`` is a signal alone, owed to a workflow started elsewhere (a parcel's,
a child of its fulfilment's): the same row, never a start.

Started rows are kept ``WORKFLOW_START_RETENTION_DAYS``, then pruned by the
``outbox-prune`` schedule (``delete_started_before``); an erasure blanks the person's
fields in the inputs that name the account (``blank_personal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import array, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import delete_batch, locked
from models.base import utcnow
from models.workflow_starts import WorkflowStart


class WorkflowStartRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: WorkflowStart) -> None:
        self.session.add(row)

    async def add_once(self, row: WorkflowStart) -> bool:
        """Insert ``row`` unless its workflow id has a row; True if inserted."""
        inserted = await self.session.exec(
            insert(WorkflowStart)
            .values(**row.model_dump())
            .on_conflict_do_nothing(index_elements=["workflow_id"])
            .returning(col(WorkflowStart.id))
        )
        return inserted.first() is not None

    async def pending(self, older_than: timedelta, limit: int) -> list[WorkflowStart]:
        cutoff = utcnow() - older_than
        result = await self.session.exec(
            locked(
                select(WorkflowStart)
                .where(col(WorkflowStart.started_at).is_(None), WorkflowStart.created_at <= cutoff)
                # Oldest first, ties by id: one total order, so which rows a batch
                # takes is decided by the rows alone.
                .order_by(col(WorkflowStart.created_at), col(WorkflowStart.id))
                .limit(limit),
                skip_locked=True,
            )
        )
        return list(result.all())

    async def owed(self, workflow_id: str) -> WorkflowStart | None:
        """The start of ``workflow_id`` if it is recorded and not yet done."""
        result = await self.session.exec(
            select(WorkflowStart).where(
                WorkflowStart.workflow_id == workflow_id, col(WorkflowStart.started_at).is_(None)
            )
        )
        return result.first()

    async def upsert_pending(self, row: WorkflowStart) -> WorkflowStart:
        """Insert ``row``, or set the row of its workflow id pending again with its input.
        ``row`` (not added to the session) then carries the stored row's id."""
        values = {
            "workflow_type": row.workflow_type,
            "task_queue": row.task_queue,
            "input": row.input,
            "start_signal": row.start_signal,
            "signal_only": row.signal_only,
            "created_at": row.created_at,
            "started_at": None,
            "last_error": None,
            "traceparent": row.traceparent,
        }
        stored_id = (
            await self.session.exec(
                insert(WorkflowStart)
                .values(id=row.id, workflow_id=row.workflow_id, **values)
                .on_conflict_do_update(index_elements=["workflow_id"], set_=values)
                .returning(col(WorkflowStart.id))
            )
        ).scalar_one()
        row.id = stored_id
        return row

    async def discard_owed(self, workflow_id: str) -> None:
        """Forget a start not yet done (the reason for it went away in this transaction)."""
        await self.session.exec(
            delete(WorkflowStart).where(
                col(WorkflowStart.workflow_id) == workflow_id,
                col(WorkflowStart.started_at).is_(None),
            )
        )

    async def mark_started(self, start_id: str, *, requested_at: datetime | None = None) -> None:
        """Done. With ``requested_at``: unless it was requested again since then (the
        newer request's own start, or the relay, still owes it)."""
        done = update(WorkflowStart).where(col(WorkflowStart.id) == start_id)
        if requested_at is not None:
            done = done.where(col(WorkflowStart.created_at) == requested_at)
        await self.session.exec(done.values(started_at=utcnow()))

    async def mark_failed(self, start_id: str, error: str) -> None:
        await self.session.exec(
            update(WorkflowStart)
            .where(col(WorkflowStart.id) == start_id)
            .values(attempts=WorkflowStart.attempts + 1, last_error=error[:2000])
        )

    async def delete_started_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows started before ``cutoff``, oldest first; rows
        another transaction holds are left for the next batch.

        Only started rows go: a pending one (failed or not: the relay retries it until
        it starts, it never gives up) is a start still owed. Once started, no row's
        presence decides a later start, whichever way it was written:

        - ``request`` (orders, returns, the welcome, a staff webhook retry): the workflow
          id is made of an id new with the request (the order's, the return's, the
          account's, the delivery's generation), so it is never requested again.
        - ``request_again`` and ``request_signal`` (cart reminders, a parcel's owed
          signal): a later request sets the row pending again, or inserts it anew once it
          is gone (``upsert_pending``); a started one holds nothing back (the start allows
          a duplicate id). ``owed`` and ``discard_owed`` read pending rows only.
        - ``add_once`` (a fulfilment, a webhook delivery, started in the relay's delivery
          of their event, the row written started): a repeated delivery (a replayed
          event) starts the workflow whether the row was there or not; Temporal's id
          (``REJECT_DUPLICATE`` while the run is kept, ``USE_EXISTING``) is what dedupes
          it. ``add_once``'s answer is only reported.

        A row requested again meanwhile (``upsert_pending``) is pending again: the lock
        reads the row as committed and checks ``started_at`` again, so it is not taken
        (or, locked first, it is deleted and the request inserts it anew)."""
        return await delete_batch(
            self.session,
            col(WorkflowStart.id),
            select(WorkflowStart.id)
            .where(
                col(WorkflowStart.started_at).is_not(None),
                col(WorkflowStart.started_at) < cutoff,
            )
            # Oldest first, ties by id (the unique key): one total order.
            .order_by(col(WorkflowStart.started_at), col(WorkflowStart.id))
            .limit(limit),
        )

    async def blank_personal(self, user_id: str, keys: Sequence[str]) -> int:
        """In the inputs that name the account ``user_id`` (``user_id``: the welcome's, a
        cart reminder's, an order's, a return's), pending or started, each of ``keys``
        present becomes ``""``: the welcome's and the reminder's inputs written before
        they stopped carrying the person held the email and name. A pending one still
        starts: its workflow reads the address and name when it sends (and finds the
        account erased), and takes them empty, as every input written since does. Rows
        locked in id order; how many were changed."""
        result = await self.session.exec(
            locked(
                select(WorkflowStart)
                .where(
                    # As ``workflow_starts_user_idx`` is written, so it is used.
                    col(WorkflowStart.input).op("?")("user_id"),
                    col(WorkflowStart.input)["user_id"].astext == user_id,
                    # ``?|``: any of the keys is in the input.
                    col(WorkflowStart.input).op("?|")(array(list(keys))),
                )
                .order_by(col(WorkflowStart.id))
            )
        )
        changed = 0
        for row in result.all():
            blanked = row.input | {key: "" for key in keys if key in row.input}
            if blanked != row.input:
                row.input = blanked
                self.session.add(row)
                changed += 1
        await self.session.flush()
        return changed


def request(
    session: AsyncSession,
    *,
    workflow_type: str,
    workflow_id: str,
    task_queue: str,
    input: BaseModel,
) -> WorkflowStart:
    """A start owed once: a workflow that ran with this id is never run again."""
    row = WorkflowStart(
        workflow_type=workflow_type,
        workflow_id=workflow_id,
        task_queue=task_queue,
        input=input.model_dump(mode="json"),
    )
    WorkflowStartRepository(session).add(row)
    return row


async def request_again(
    session: AsyncSession,
    *,
    workflow_type: str,
    workflow_id: str,
    task_queue: str,
    input: BaseModel,
    signal: str,
) -> WorkflowStart:
    """A signal-with-start owed by this change: it signals the running workflow, or
    starts a new one (also after an earlier one finished)."""
    row = WorkflowStart(
        workflow_type=workflow_type,
        workflow_id=workflow_id,
        task_queue=task_queue,
        input=input.model_dump(mode="json"),
        start_signal=signal,
        created_at=utcnow(),
    )
    return await WorkflowStartRepository(session).upsert_pending(row)


async def request_signal(
    session: AsyncSession,
    *,
    workflow_type: str,
    workflow_id: str,
    task_queue: str,
    signal: str,
    arg: BaseModel | None = None,
) -> WorkflowStart:
    """A signal owed by this change to the running workflow ``workflow_id``, sent after
    the commit or by the relay; never a start (a workflow that has ended is not told).
    ``arg``, the signal's argument, is kept as the row's input (none: ``{}``)."""
    row = WorkflowStart(
        workflow_type=workflow_type,
        workflow_id=workflow_id,
        task_queue=task_queue,
        input={} if arg is None else arg.model_dump(mode="json"),
        start_signal=signal,
        signal_only=True,
        created_at=utcnow(),
    )
    return await WorkflowStartRepository(session).upsert_pending(row)
