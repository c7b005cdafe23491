"""3-D Secure nobody completes: after the wait (15 minutes, skipped by Temporal's
time-skipping test server) the order fails, the stock comes back and the hold is voided.

The activities are the real ones, talking to the real database and to the Stripe
sandbox over HTTP; only the clock is Temporal's test server.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from core.db import create_session_factory, transaction
from models.order_api import OrderCreate
from models.users import User
from services.checkout import Checkout, order_input
from services.workflow_starts import WorkflowStartRepository
from temporal.clients.orders import workflow_id
from temporal.queues import ALL_QUEUES, TaskQueue
from tests.live import LiveStack
from tests.orders.helpers import intents_for, order_body, product, shopper_with_cart, stock
from workers.main import running_workers, worker_deps
from workflows.orders import OrderWorkflow


async def test_an_abandoned_3ds_times_out_and_compensates(
    http: httpx.AsyncClient,
    staff: dict[str, str],
    live: LiveStack,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    item = await product(http, staff, stock=4)
    shopper = await shopper_with_cart(http, [(item, 2)])
    body = OrderCreate.model_validate(order_body(shopper.cart_id, "pm_card_authenticationRequired"))
    async with transaction(create_session_factory(engine)) as session:
        user = await session.get(User, shopper.user["id"])
        assert user is not None
        order, start = await Checkout(session, live.settings).place(user, body)
        assert start is not None
        # This order's workflow runs on the time-skipping server, not the dev server.
        await WorkflowStartRepository(session).mark_started(start.id)
        order_id = order.id
        inputs = order_input(order, live.settings)
    assert inputs.action_timeout_seconds == 15 * 60

    client = time_skipping_env.client
    async with (
        worker_deps(live.settings, client) as deps,
        running_workers(client, deps, ALL_QUEUES),
    ):
        handle = await client.start_workflow(
            OrderWorkflow.run, inputs, id=workflow_id(order_id), task_queue=str(TaskQueue.ORDERS)
        )
        result = await handle.result()
    assert (result.status, result.failure_code) == ("failed", "payment_action_timeout")

    order_view: dict[str, Any] = (
        await http.get(f"/api/orders/{order_id}", headers=shopper.headers)
    ).json()
    assert order_view["status"] == "failed"
    assert order_view["failureCode"] == "payment_action_timeout"
    assert "requires_action" in [e["status"] for e in order_view["timeline"]]
    assert [i["status"] for i in await intents_for(http, order_id)] == ["canceled"]
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (4, 0)
