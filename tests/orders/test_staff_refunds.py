"""Staff refunds whose answer was lost: a retry repeats the refund, a new refund is made
anew (the provider key comes from the request's ``Idempotency-Key``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.events import EventType
from integrations.payments.gateway import PaymentUnavailable, RefundResult
from integrations.payments.stripe import StripeGateway
from services import payments
from services.order_repository import OrderRepository
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.orders.helpers import intents_for, paid_order, refunded, stripe_forgets_keys


class _RefundAnswerLost(StripeGateway):
    """The Stripe sandbox over HTTP, but a refund's answer is lost after the sandbox made
    it (a timeout on the way back)."""

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int | None,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        await super().refund(
            intent_id,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        raise PaymentUnavailable("the refund's answer was lost")


async def test_a_staff_refund_retried_after_a_lost_answer_refunds_once_whatever_came_between(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """The staff refund's provider key counts the order's staff refunds, so its retry
    repeats the refund whose answer was lost. A return's refund, or a staff refund asked
    with an ``Idempotency-Key``, recorded in between does not move it on: counted too, the
    retry took a new key and refunded a second time."""
    shopper, placed = await paid_order(http, staff)
    sessions = create_session_factory(engine)
    gateway = StripeGateway.from_settings(live.settings)

    async def refund_of(amount: int, via: StripeGateway, **owed: Any) -> None:
        async with transaction(sessions) as session:
            row = await OrderRepository(session).require(placed["id"])
            await payments.refund(
                session, via, row, amount=amount, reason="dented", staff_id=None, **owed
            )

    with pytest.raises(PaymentUnavailable):
        await refund_of(1000, _RefundAnswerLost.from_settings(live.settings))
    await refund_of(500, gateway, key="return:ret_between", source={"returnId": "ret_between"})
    await refund_of(300, gateway, request_key="keyed-between")
    await refund_of(1000, gateway)  # staff try again

    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == 1800
    after = await http.get(f"/api/orders/{placed['id']}", headers=shopper.headers)
    assert after.json()["payment"]["amountRefunded"] == 1800


async def test_a_new_staff_refund_after_a_lost_answer_refunds_anew_and_the_retry_once(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """Two staff refunds of 10.00, the first's answer lost: the second (its own
    ``Idempotency-Key``) is a new refund, and the first's retry (its key again) repeats
    the first. Keyed by the count of staff refunds, the second took the first's key and
    Stripe answered it with the first refund: 10.00 refunded, not 20.00.

    The second refund also announces the first's money (``unrecorded``): announcing its
    own 10.00 only, the events said 10.00 of the 20.00 refunded until (unless) the first
    was retried. The retry then announces nothing more."""
    _shopper, placed = await paid_order(http, staff)
    staff_id = (await http.get("/api/users/me", headers=staff)).json()["id"]
    url = f"/api/admin/orders/{placed['id']}/refunds"
    body = {"amount": 1000, "reason": "dented"}
    first, second = (f"{name}-{placed['id']}" for name in ("first", "second"))
    await _refund_answer_lost(engine, live, placed["id"], staff_id, first)
    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == 1000

    again = await http.post(url, headers=staff | {"Idempotency-Key": second}, json=body)
    assert again.status_code == 200, again.text
    assert await refunded(http, intent["id"]) == 2000
    announced = await _announced(engine, placed["id"])
    assert [(e["amount"], e.get("unrecorded", False)) for e in announced] == [
        (1000, True),
        (1000, False),
    ]
    assert [e["refundedTotal"] for e in announced] == [1000, 2000]
    retry = await http.post(url, headers=staff | {"Idempotency-Key": first}, json=body)
    assert retry.status_code == 200, retry.text
    assert await refunded(http, intent["id"]) == 2000
    assert retry.json()["payment"]["amountRefunded"] == 2000
    refunds = [e for e in retry.json()["timeline"] if e["message"].startswith("refunded ")]
    assert len(refunds) == 2
    assert sum(e["amount"] for e in await _announced(engine, placed["id"])) == 2000


async def test_a_keyed_staff_refund_retried_after_its_money_went_elsewhere_is_replayed(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """10.00 refunded at Stripe, the answer lost; another refund then took all but 5.00 and
    recorded Stripe's total. The first's retry (its ``Idempotency-Key``, 10.00) is more
    than the 5.00 left here, but it asks Stripe the same and is answered with the refund
    made (200, nothing more refunded); checked here first, it answered 409
    ``payment_not_refundable`` for a refund that was made."""
    _shopper, placed = await paid_order(http, staff)
    total = placed["totals"]["total"]
    staff_id = (await http.get("/api/users/me", headers=staff)).json()["id"]
    first = f"first-{placed['id']}"
    await _refund_answer_lost(engine, live, placed["id"], staff_id, first)
    url = f"/api/admin/orders/{placed['id']}/refunds"
    rest = {"amount": total - 1500, "reason": "goodwill"}
    other = await http.post(url, headers=staff | {"Idempotency-Key": f"o-{first}"}, json=rest)
    assert other.json()["payment"]["amountRefunded"] == total - 500, other.text

    body = {"amount": 1000, "reason": "dented"}
    retry = await http.post(url, headers=staff | {"Idempotency-Key": first}, json=body)
    assert retry.status_code == 200, retry.text
    assert retry.json()["payment"]["amountRefunded"] == total - 500
    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == total - 500


@pytest.mark.parametrize("keyed", [True, False], ids=["idempotency-key", "counted-key"])
async def test_a_staff_refund_retried_after_stripe_forgot_its_key_is_not_made_again(
    http: httpx.AsyncClient,
    staff: dict[str, str],
    live: LiveStack,
    engine: AsyncEngine,
    keyed: bool,
) -> None:
    """Stripe keeps an idempotency key 24 hours. A staff refund whose answer was lost (503)
    and which staff send again the next day (the same ``Idempotency-Key``, or none: the
    counted key again) is found among Stripe's refunds by the key it carries, not made a
    second time: 10.00 refunded, not 20.00."""
    _shopper, placed = await paid_order(http, staff)
    staff_id = (await http.get("/api/users/me", headers=staff)).json()["id"]
    request_key = f"next-day-{placed['id']}" if keyed else None
    await _refund_answer_lost(engine, live, placed["id"], staff_id, request_key)
    assert await stripe_forgets_keys(engine, f"{placed['id']}:")
    headers = staff | ({"Idempotency-Key": request_key} if request_key else {})
    again = await http.post(
        f"/api/admin/orders/{placed['id']}/refunds",
        headers=headers,
        json={"amount": 1000, "reason": "dented"},
    )
    assert again.status_code == 200, again.text
    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == 1000
    assert again.json()["payment"]["amountRefunded"] == 1000


async def _refund_answer_lost(
    engine: AsyncEngine, live: LiveStack, order_id: str, staff_id: str, request_key: str | None
) -> None:
    """A staff refund of 10.00, as the endpoint runs it, until Stripe's answer is lost
    (``request_key`` the request's ``Idempotency-Key``, None when it had none)."""
    async with transaction(create_session_factory(engine)) as session:
        row = await OrderRepository(session).require(order_id)
        with pytest.raises(PaymentUnavailable):
            await payments.refund(
                session,
                _RefundAnswerLost.from_settings(live.settings),
                row,
                amount=1000,
                reason="dented",
                staff_id=staff_id,
                request_key=request_key,
            )


async def _announced(engine: AsyncEngine, order_id: str) -> list[dict[str, Any]]:
    """The order's ``payment.refunded`` events' data, in the order written."""
    async with create_session_factory(engine)() as session:
        return [e.data for e in await published(session, order_id, EventType.PAYMENT_REFUNDED)]
