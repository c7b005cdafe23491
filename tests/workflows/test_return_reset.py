"""An operator resets a ``ReturnWorkflow`` (``temporal workflow reset``, the UI's Reset),
on a dev server of this module's own with the return's stand-in activities: the
time-skipping server cannot reset a workflow, and the stand-ins poll the ``orders``
queue, which the session's dev server shares with other modules. The scenarios are
``return_resets.py`` (``record_reset_histories.py`` records them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.workflows.return_resets import (
    reset_before_the_approval,
    reset_before_the_receipt_while_refunding,
    reset_to_the_first_task_once_closed,
)
from tests.workflows.return_standins import ReturnStandIns


@pytest.fixture(scope="module")
async def returns() -> AsyncIterator[tuple[Client, ReturnStandIns]]:
    standins = ReturnStandIns()
    async with standins.on_dev_server() as client:
        yield client, standins


async def test_reset_to_before_its_approval_the_run_takes_the_receipt(
    returns: tuple[Client, ReturnStandIns],
) -> None:
    """Reset to the task that took staff's approval, Updates not sent again: the run
    reads the return at the reset point, approved, and takes staff's receipt (no second
    label), refunds and closes. Before, the reset run waited for a decision the row
    already had and refused the receipt (``return_not_approved``)."""
    await reset_before_the_approval(*returns)


async def test_reset_to_before_its_receipt_the_return_is_refunded_once_at_once(
    returns: tuple[Client, ReturnStandIns],
) -> None:
    """The return was received and its refund was retrying (Stripe away) when an
    operator reset it to the task that took staff's receipt, the Update not applied
    again. The reset run reads the return there, received: it refunds it (one refund:
    the return's key) and closes it. Before, it waited for a receipt until the ship-by
    time (fourteen days), the refund owed all that time."""
    await reset_before_the_receipt_while_refunding(*returns)


async def test_reset_to_its_first_task_a_closed_return_stays_closed(
    returns: tuple[Client, ReturnStandIns],
) -> None:
    """A closed return reset to its first workflow task: the run reads it at its start
    and ends closed, nothing done again. Before, it waited for a decision for good."""
    await reset_to_the_first_task_once_closed(*returns)
