"""An order's emails go to whom the order belongs to when they are sent: an account
erased while its order waits (here for 3-D Secure) is not written to, neither at the
address the workflow's snapshot still holds nor at the erased one. Before, the
confirmation went to the snapshot's address, an erased person's."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.users import erased_email
from temporal.clients.orders import workflow_id
from tests.live import LiveStack
from tests.orders.helpers import place, product, shopper_with_cart, wait_for


async def test_an_account_erased_during_its_order_is_not_emailed(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    waiting = await wait_for(http, shopper.headers, placed["id"], {"requires_action"})

    user_id, address = shopper.user["id"], shopper.user["email"]
    erased = await http.delete(f"/api/users/{user_id}", headers=shopper.headers)
    assert erased.status_code == 204, erased.text
    # The customer had authenticated in another tab: the order goes on, paid.
    assert (await http.get(waiting["nextActionUrl"])).status_code == 200
    await live.client.get_workflow_handle(workflow_id(placed["id"])).result()
    order = await wait_for(http, staff, placed["id"])
    assert order["status"] == "fulfillment_queued", order

    for to in (address, erased_email(user_id)):
        mail = (await http.get("/_sandbox/mail/messages", params={"to": to})).json()
        assert [m["subject"] for m in mail if placed["id"] in m["subject"]] == []
    async with engine.connect() as conn:
        ledger = await conn.execute(
            text("SELECT count(*) FROM email_messages WHERE idempotency_key = :key"),
            {"key": f"order_confirmation:{placed['id']}"},
        )
        assert ledger.scalar_one() == 0
