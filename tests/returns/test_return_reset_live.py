"""An operator resets a return's workflow on the live stack (``temporal workflow reset``,
the UI's Reset), with the real steps: staff approved the return (its label bought, the
customer emailed), then the run is reset to the task that took the approval, Updates not
sent again. The reset run reads the return (``returns.read``) and goes on from it:
staff's receipt is taken, one refund made, the return closed; nothing is done twice.
``tests/workflows/test_return_reset.py`` resets at other points with stand-ins."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import ResetReapplyExcludeType

from core.db import create_session_factory
from core.events import EventType
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.orders.helpers import (
    eventually,
    intents_for,
    place,
    product,
    refunded,
    shopper_with_cart,
    wait_for,
)
from tests.returns.delivered import Parcel, days_ago, return_until, ship
from tests.workflows.fulfillment_resets import reset, task_that_took_the_update
from workflows.types.fulfillment import return_workflow_id


async def test_reset_to_before_the_approval_the_receipt_is_taken_and_refunded_once(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """Before "return-reset-reads-the-return" the reset run waited for a decision the row
    already had, and staff's receipt answered 409 ``return_not_approved`` (the README's
    workaround approved it again through Temporal)."""
    mug = await product(http, staff, price=1000, stock=10)
    shopper = await shopper_with_cart(http, [(mug, 3)])
    order = await wait_for(http, shopper.headers, (await place(http, shopper))["id"])
    await ship(engine, order["id"], [Parcel({0: 3}, days_ago(2))])
    asked = await http.post(
        f"/api/orders/{order['id']}/returns",
        headers=shopper.headers,
        json={"lines": [{"productId": mug["id"], "quantity": 2}], "reason": "no_longer_needed"},
    )
    assert asked.status_code == 201, asked.text
    return_id, line_id = asked.json()["id"], asked.json()["lines"][0]["id"]
    approved = await http.post(f"/api/admin/returns/{return_id}/approve", headers=staff)
    assert approved.status_code in (200, 202), approved.text
    label = (await return_until(http, staff, return_id, "approved"))["labelUrl"]

    workflow_id = return_workflow_id(return_id)
    took_the_approval = await task_that_took_the_update(live.client, workflow_id)
    await reset(
        live.client,
        workflow_id,
        took_the_approval,
        ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE,
    )

    back = {"returnLineId": line_id, "receivedQuantity": 2, "damagedQuantity": 0}

    async def received() -> bool:
        answer = await http.post(
            f"/api/admin/returns/{return_id}/receive", headers=staff, json={"lines": [back]}
        )
        # Refused only while the reset run reads the return (a moment), never for good.
        assert answer.status_code in (200, 202, 409), answer.text
        return answer.status_code != 409

    await eventually(received)
    done = await return_until(http, staff, return_id, "closed")
    assert done["labelUrl"] == label  # the same label, bought once
    [intent] = await intents_for(http, order["id"])
    assert await refunded(http, intent["id"]) == done["refundAmount"] == 2125
    async with create_session_factory(engine)() as session:
        for kind in (
            EventType.RETURN_APPROVED,  # the customer's email with the label: once
            EventType.RETURN_RECEIVED,
            EventType.PAYMENT_REFUNDED,
            EventType.RETURN_REFUNDED,
        ):
            assert len(await published(session, order["id"], kind)) == 1, kind
