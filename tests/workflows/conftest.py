from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.workflows.order_standins import OrderStandIns
from tests.workflows.return_standins import ReturnStandIns


@pytest.fixture(scope="module")
async def standins(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[OrderStandIns]:
    """``OrderWorkflow`` and its stand-in activities on the time-skipping server, one set
    of workers per test module; each test scripts its own orders."""
    async with OrderStandIns().running(time_skipping_env.client) as running:
        yield running


@pytest.fixture(scope="module")
async def returns(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[ReturnStandIns]:
    """``ReturnWorkflow`` and its stand-in activities on the time-skipping server, one
    worker per test module."""
    standins = ReturnStandIns()
    async with standins.worker(time_skipping_env.client):
        yield standins


@pytest.fixture(autouse=True)
def _release_blocks(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that fails while a stand-in is blocked must not stall the ones after it."""
    yield
    if "standins" in request.fixturenames:
        request.getfixturevalue("standins").release_all()
