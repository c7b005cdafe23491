"""An operator resets a ``ReturnWorkflow`` (``temporal workflow reset``, the UI's Reset),
on a dev server of this module's own with the return's stand-in activities: the
time-skipping server cannot reset a workflow, and the stand-ins poll the ``orders``
queue, which the session's dev server shares with other modules. The scenario is
``return_resets.py`` (``record_reset_histories.py`` records it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.conftest import start_dev_server
from tests.workflows.return_resets import reset_before_the_receipt_while_refunding
from tests.workflows.return_standins import ReturnStandIns


@pytest.fixture(scope="module")
async def returns() -> AsyncIterator[tuple[Client, ReturnStandIns]]:
    env = await start_dev_server()
    try:
        standins = ReturnStandIns()
        async with standins.worker(env.client):
            yield env.client, standins
    finally:
        await env.shutdown()


async def test_reset_to_before_its_receipt_the_return_is_still_refunded_once_and_closed(
    returns: tuple[Client, ReturnStandIns],
) -> None:
    """The return was received and its refund was retrying (Stripe away) when an
    operator reset it to the task that took staff's receipt, the Update not applied
    again. The reset run waits for the receipt until the ship-by time, when the cancel
    answers that the return is received: it refunds it (one refund: the return's key)
    and closes it. Before, it ended ``cancelled`` there, the refund never made, while
    the return's row said received."""
    await reset_before_the_receipt_while_refunding(*returns)
