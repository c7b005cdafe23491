"""A return whose read at its start (``returns.read``, a local step since
"return-reset-reads-the-return") ends while a query is answered; on a dev server of this
module's own with the return's stand-ins; how, in ``held_queries``.

Nothing the run does after that read asks a patch first (``return-reset-reads-the-return``
and ``return-approval-before-run-kept`` are asked before it, the others after remote
steps): a replay of its history, where the read's result and what followed it are in two
workflow tasks, takes the same path, on a query of the closed return (the Temporal UI's)
or on a worker taking it up after its cache dropped it. A patch asked after the read
would fail here ("Non-deprecated patch marker encountered").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner

from models.returns import ReturnReason, ReturnStatus
from tests.workflows.held_queries import (
    TASK_TIMEOUT,
    HoldQueries,
    query_while_the_step_ends,
    replay_failures,
    step_ended_a_task,
)
from tests.workflows.order_standins import Block
from tests.workflows.return_standins import (
    RECEIPT,
    ReturnStandIns,
    return_input,
    start_return,
    until_approved,
)
from workflows.returns import ReturnWorkflow
from workflows.types.returns import ReturnView


@pytest.fixture(scope="module")
async def returns() -> AsyncIterator[tuple[Client, ReturnStandIns]]:
    standins = ReturnStandIns()
    # Unsandboxed: the held query blocks the workflow's thread (``held_queries``).
    async with standins.on_dev_server(
        interceptors=[HoldQueries()], workflow_runner=UnsandboxedWorkflowRunner()
    ) as client:
        yield client, standins


async def test_a_return_whose_read_ended_during_a_query_replays(
    returns: tuple[Client, ReturnStandIns],
) -> None:
    """Auto-approved: the label step follows the read at once."""
    client, standins = returns
    input = return_input(reason=ReturnReason.DAMAGED, auto_approve=True)
    read = standins.held_reads[input.return_id] = Block()
    handle = await start_return(client, input, task_timeout=TASK_TIMEOUT)
    await asyncio.wait_for(read.started.wait(), 10)

    async def end_step() -> None:
        read.release()
        await read.ended.wait()

    await query_while_the_step_ends(handle, ReturnView, end_step)
    await until_approved(handle)
    await handle.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await handle.result()).status is ReturnStatus.CLOSED
    history = await handle.fetch_history()
    assert step_ended_a_task(history), "the read's result was not reported with the query's answer"
    # A closed run leaves the worker's cache: this query replays it.
    assert (await handle.query(ReturnWorkflow.status)).status is ReturnStatus.CLOSED
    assert await replay_failures([ReturnWorkflow], history) == []
