"""A return's refund that Stripe answered ``succeeded`` and that failed later
(``refund.failed``): the return is owed its money again, shows why, and staff settle it
with a new refund at Stripe."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from core.events import EventType
from integrations.payments.stripe import StripeGateway
from models.returns import ReturnStatus
from services.returns import ReturnRepository, ReturnSteps
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.orders.helpers import (
    eventually,
    intents_for,
    provider_events,
    refunded,
)
from tests.orders.test_refund_failures import fail_refund
from tests.returns.delivered import two_mugs_of_three_approved
from workflows.types.returns import ReceivedLine

# Two of three 10.00 mugs back undamaged: 20.00 + Massachusetts tax 1.25 (see
# two_mugs_of_three_approved).
OWED = 2125


async def test_a_return_whose_refund_failed_is_reopened_and_settled_with_a_new_refund(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """Read never, the failure left the return ``closed`` as refunded with money the
    customer never got, and its settlement was refused (409 ``return_not_settleable``)."""
    shopper, order, request, line = await two_mugs_of_three_approved(
        http, staff, engine, live.settings
    )
    sessions = create_session_factory(engine)
    steps = ReturnSteps(sessions, StripeGateway.from_settings(live.settings))
    back = [ReceivedLine(return_line_id=line.id, received_quantity=2, damaged_quantity=0)]
    assert await steps.receive(request.id, back, staff_id=None) == OWED
    failed_id = await steps.refund(request.id)
    assert failed_id is not None
    await steps.close(request.id)
    [intent] = await intents_for(http, order["id"])
    assert await refunded(http, intent["id"]) == OWED

    await fail_refund(http, failed_id)

    async def reopened() -> bool:
        async with sessions() as session:
            row = await ReturnRepository(session).require(request.id)
        return row.status == ReturnStatus.RECEIVED

    await eventually(reopened)
    shown = (await http.get(f"/api/admin/returns/{request.id}", headers=staff)).json()
    assert shown["status"] == "received"
    assert failed_id in shown["refundError"]
    assert "expired_or_canceled_card" in shown["refundError"]
    [failure] = await provider_events(engine, order["id"], "refund_failed")
    assert (failure["refundId"], failure["reversed"], failure["returnId"]) == (
        failed_id,
        OWED,
        request.id,
    )
    assert await refunded(http, intent["id"]) == 0
    async with sessions() as session:
        [told] = await published(session, order["id"], EventType.PAYMENT_REFUND_FAILED)
    assert (told.data["refundId"], told.data["amount"], told.data["returnId"]) == (
        failed_id,
        OWED,
        request.id,
    )

    url = f"/api/admin/returns/{request.id}/settle"
    body = {"amount": OWED, "note": "the card was replaced; refunded again"}
    settled = await http.post(url, headers=staff, json=body)
    assert settled.status_code == 200, settled.text
    assert settled.json()["status"] == "closed"
    assert settled.json()["refundId"] not in (None, failed_id)
    assert await refunded(http, intent["id"]) == OWED
    # Sent again (a retry after a lost answer): nothing more.
    again = await http.post(url, headers=staff, json=body)
    assert again.status_code == 200, again.text
    assert await refunded(http, intent["id"]) == OWED
    after = (await http.get(f"/api/orders/{order['id']}", headers=shopper.headers)).json()
    assert after["payment"]["amountRefunded"] == OWED
    # Staff's timeline says it in money, not minor units ("2125 USD" was 21.25); the
    # customer's has the refund, not the staff's settlement.
    owed = f"{OWED // 100}.{OWED % 100:02d} USD"
    settlement = f"return settled by staff: {owed} refunded of {owed}"
    assert settlement not in [e["message"] for e in after["timeline"]]
    assert f"refunded {owed}" in [e["message"] for e in after["timeline"]]
    ledger = (await http.get(f"/api/orders/{order['id']}", headers=staff)).json()
    assert settlement in [e["message"] for e in ledger["timeline"]]

    # The settlement's refund fails too: settled again with the same amount, it is a new
    # refund (its key names the failed one), not Stripe's answer about the failed one.
    second_failed = settled.json()["refundId"]
    await fail_refund(http, second_failed)
    await eventually(reopened)
    assert await refunded(http, intent["id"]) == 0
    async with sessions() as session:
        bounced = await published(session, order["id"], EventType.PAYMENT_REFUND_FAILED)
    assert [e.data["refundId"] for e in bounced] == [failed_id, second_failed]
    third = await http.post(url, headers=staff, json=body)
    assert third.status_code == 200, third.text
    assert third.json()["refundId"] not in (failed_id, second_failed)
    assert await refunded(http, intent["id"]) == OWED
