"""An operator resets a ``FulfillmentWorkflow`` (``temporal workflow reset``, the UI's
Reset), on a dev server of this module's own with the fulfilment's stand-in activities
and parcel: the time-skipping server cannot reset a workflow, and the stand-ins poll the
``orders`` queue, which the session's dev server shares with other modules. The
scenarios are ``fulfillment_resets.py`` (``record_reset_histories.py`` records them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import start_dev_server
from tests.workflows.fulfillment_resets import (
    reset_after_a_released_hold,
    reset_to_the_first_task,
    reset_without_its_updates,
)
from tests.workflows.fulfillment_standins import FulfillmentStandIns


@pytest.fixture(scope="module")
async def fulfilments() -> AsyncIterator[tuple[Client, FulfillmentStandIns]]:
    env: WorkflowEnvironment = await start_dev_server()
    try:
        async with FulfillmentStandIns().running(env.client) as running:
            yield env.client, running
    finally:
        await env.shutdown()


async def test_reset_to_its_first_task_the_run_names_the_same_parcel_and_goes_on(
    fulfilments: tuple[Client, FulfillmentStandIns],
) -> None:
    """Reset to the first workflow task (the README's repair), the staff Update that made
    a parcel applied again: the run names the parcel it named before (the activity
    answers it again), starts no second workflow for it, and follows it and a later
    parcel to delivered. Before, the reset run named the parcel from its own new start
    time: another parcel of the same units (the real service makes it while units are
    left: a second label; else it refuses), the first parcel's news dropped as a
    stranger's, the fulfilment back to in progress."""
    await reset_to_the_first_task(*fulfilments)


async def test_reset_without_its_updates_the_run_takes_the_parcels_the_database_has(
    fulfilments: tuple[Client, FulfillmentStandIns],
) -> None:
    """Reset to the task that took staff's parcel Update, Updates not sent again
    (``--reapply-exclude Update``, or an Update the server cannot apply again): the run
    reads its fulfilment again at the reset point, knows the parcel as stored, follows
    its news to delivered and ends. Before, the reset run knew no parcel: the parcel's
    news was dropped, the fulfilment stayed ``open`` for good while its rows said
    shipped, and its workflow never ended."""
    await reset_without_its_updates(*fulfilments)


async def test_reset_to_before_an_exception_staff_released_it_holds_no_second_time(
    fulfilments: tuple[Client, FulfillmentStandIns],
) -> None:
    """A parcel's exception put the fulfilment on hold (the warehouse emailed) and staff
    released it; the fulfilment is reset to before the exception, which Temporal tells
    the reset run again, with the release. The hold is keyed by the exception (the
    parcel's first): asked again, it changes nothing, nobody is emailed, and the parcel
    is followed to the door. Before, the reset run held the fulfilment again and the
    warehouse had a second email for an exception already dealt with."""
    await reset_after_a_released_hold(*fulfilments)
