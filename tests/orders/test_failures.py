"""Every failure path runs the right compensations: stock comes back, the payment is
voided or refunded, the coupon use is given back, and the order says why."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.exceptions import ApplicationError

from activities.orders import OrderActivities
from activities.payments import PaymentActivities
from core.db import create_session_factory, transaction
from core.events import EventType
from integrations.payments.gateway import RefundResult
from integrations.payments.stripe import StripeGateway
from models.sandbox import SandboxStripeObject
from services import payments
from services.analytics import AnalyticsRecorder
from services.order_repository import OrderRepository
from services.payments import PaymentService
from temporal.clients.orders import workflow_id
from tests.factories import unique_slug
from tests.fulfillment.helpers import fulfilment_of, label_bought, order_lines
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.lock_waits import waiting_on_locks
from tests.orders.helpers import (
    eventually,
    intents_for,
    outbox_types,
    place,
    product,
    refunded,
    shopper_with_cart,
    stock,
    wait_for,
)
from workflows.types.orders import OrderRef, ReserveInput


async def test_a_declined_card_fails_the_order_and_gives_the_stock_back(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    item = await product(http, staff, stock=5)
    shopper = await shopper_with_cart(http, [(item, 3)])
    placed = await place(http, shopper, token="pm_card_chargeDeclined")
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "payment_declined")
    assert order["payment"]["status"] in ("failed", "voided")
    # Issue 11: declined before any hold, it reads as failed, not voided.
    assert order["payment"]["status"] == "failed"
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (5, 0)
    # The declined intent was cancelled by the compensation; nothing was captured.
    intents = await intents_for(http, placed["id"])
    assert [i["status"] for i in intents] == ["canceled"]
    assert await outbox_types(engine, placed["id"]) == ["payment.failed"]
    # The customer's email is the payment.failed subscriber's (tests/orders/
    # test_event_emails.py), not an order_failed one from the workflow.
    await live.client.get_workflow_handle(workflow_id(placed["id"])).result()
    mail = await http.get("/_sandbox/mail/messages", params={"to": shopper.user["email"]})
    assert not any("could not complete" in m["subject"] for m in mail.json())
    # The cart is still there to try again, and a new checkout makes a new order.
    again = await place(http, shopper)
    assert again["id"] != placed["id"]
    assert (await wait_for(http, shopper.headers, again["id"]))["status"] == "fulfillment_queued"


async def test_stock_gone_since_the_cart_was_filled_fails_with_out_of_stock(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    plenty = await product(http, staff, stock=5)
    scarce = await product(http, staff, stock=2)
    shopper = await shopper_with_cart(http, [(plenty, 1), (scarce, 2)])
    taken = await http.post(
        f"/api/inventory/{scarce['id']}/adjust",
        headers=staff,
        json={"delta": -1, "reason": "damaged"},
    )
    assert taken.status_code == 200
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "out_of_stock")
    assert scarce["id"] in order["failureDetail"]
    [failed] = [e for e in order["timeline"] if e["status"] == "failed"]
    assert failed["data"]["unavailableItems"] == [
        {"productId": scarce["id"], "requested": 2, "available": 1}
    ]
    assert order["payment"] is None  # never charged
    assert await intents_for(http, placed["id"]) == []
    for item, on_hand in ((plenty, 5), (scarce, 1)):
        level = await stock(http, staff, item["id"])
        assert (level["onHand"], level["reserved"]) == (on_hand, 0)
    assert await outbox_types(engine, placed["id"]) == ["order.failed"]


async def test_a_product_repriced_in_another_currency_fails_the_order_before_anything_is_held(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """The cart holds a USD product whose price staff then set in yen: validate-order
    refuses it (``currency_mismatch``), nothing reserved, nothing charged. Priced as the
    cart's currency, its 3000 yen were charged as 30.00 USD."""
    item = await product(http, staff, stock=5)
    shopper = await shopper_with_cart(http, [(item, 1)])
    repriced = await http.patch(
        f"/api/products/{item['id']}", headers=staff, json={"price": 3000, "currency": "JPY"}
    )
    assert repriced.status_code == 200, repriced.text
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "currency_mismatch")
    assert order["payment"] is None
    assert await intents_for(http, placed["id"]) == []
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (5, 0)
    assert await outbox_types(engine, placed["id"]) == ["order.failed"]


@pytest.mark.parametrize("removal", ["deactivated", "deleted"])
async def test_a_product_taken_off_sale_after_it_was_carted_fails_the_order_before_anything_is_held(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, removal: str
) -> None:
    """The cart holds a product that staff then deactivate (or delete): it can no longer
    be added to a cart (422 ``product_inactive``), so validate-order refuses it too, with
    the same code, before anything is reserved or charged. Before, it was sold anyway."""
    item = await product(http, staff, stock=5)
    shopper = await shopper_with_cart(http, [(item, 1)])
    if removal == "deactivated":
        taken = await http.patch(
            f"/api/products/{item['id']}", headers=staff, json={"active": False}
        )
    else:
        taken = await http.delete(f"/api/products/{item['id']}", headers=staff)
    assert taken.status_code in (200, 204), taken.text
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "product_inactive")
    assert item["id"] in order["failureDetail"]
    assert order["payment"] is None
    assert await intents_for(http, placed["id"]) == []
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (5, 0)
    assert await outbox_types(engine, placed["id"]) == ["order.failed"]


async def test_three_d_secure_completed_by_the_customer_goes_through(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    waiting = await wait_for(http, shopper.headers, placed["id"], {"requires_action"})
    url = waiting["nextActionUrl"]
    assert url
    assert "/_sandbox/stripe/3ds/" in url
    assert (await stock(http, staff, item["id"]))["reserved"] == 1  # held while waiting
    visited = await http.get(url)
    assert visited.status_code == 200
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    assert order["nextActionUrl"] is None
    assert [i["status"] for i in await intents_for(http, placed["id"])] == ["succeeded"]


async def test_three_d_secure_failed_by_the_customer_declines_the_order(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 2)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    waiting = await wait_for(http, shopper.headers, placed["id"], {"requires_action"})
    assert (await http.get(waiting["nextActionUrl"], params={"outcome": "fail"})).status_code == 200
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "payment_declined")
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (3, 0)


async def _sent(count: Callable[[], Awaitable[int]]) -> bool:
    return await count() > 0


async def test_cancelling_while_3ds_waits_voids_and_releases(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    await wait_for(http, shopper.headers, placed["id"], {"requires_action"})
    cancelled = await http.post(
        f"/api/orders/{placed['id']}/cancel",
        headers=shopper.headers,
        json={"reason": "changed my mind"},
    )
    assert cancelled.status_code == 200, cancelled.text
    order = cancelled.json()
    assert order["status"] == "cancelled"
    assert order["payment"]["status"] == "voided"
    assert [i["status"] for i in await intents_for(http, placed["id"])] == ["canceled"]
    assert (await stock(http, staff, item["id"]))["reserved"] == 0
    assert await outbox_types(engine, placed["id"]) == ["order.cancelled"]
    # Cancelling again is harmless; the customer was told once.
    again = await http.post(f"/api/orders/{placed['id']}/cancel", headers=shopper.headers)
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")

    # The cancel update answers before the workflow has sent the email: wait for it.
    async def cancellation_mail() -> int:
        mail = await http.get("/_sandbox/mail/messages", params={"to": shopper.user["email"]})
        return sum("cancelled" in m["subject"] for m in mail.json())

    await live.client.get_workflow_handle(workflow_id(placed["id"])).result()
    await eventually(lambda: _sent(cancellation_mail))
    assert await cancellation_mail() == 1


async def test_a_cancel_racing_the_authorisation_voids_it(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    # Every Stripe call now takes two seconds: the cancel lands while the card is
    # charged, even on a loaded machine.
    await http.put("/_sandbox/stripe/faults", json={"latencyMs": 2000})
    placed = await place(http, shopper)
    await wait_for(http, shopper.headers, placed["id"], {"reserved"})

    # The PaymentIntent exists: the card is being authorised right now. Read from the
    # sandbox's table: its API would make every look take the injected two seconds.
    async def authorising() -> bool:
        async with create_session_factory(engine)() as session:
            found = await session.exec(
                select(SandboxStripeObject).where(
                    SandboxStripeObject.kind == "payment_intent",
                    text("data->'metadata'->>'order_id' = :order").bindparams(order=placed["id"]),
                )
            )
            return found.first() is not None

    await eventually(authorising)
    cancelled = await http.post(f"/api/orders/{placed['id']}/cancel", headers=shopper.headers)
    assert cancelled.status_code in (200, 202), cancelled.text
    await http.delete("/_sandbox/stripe/faults")
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "cancelled", order
    intents = await intents_for(http, placed["id"])
    assert [i["status"] for i in intents] == ["canceled"]  # authorised, then voided
    assert (await stock(http, staff, item["id"]))["reserved"] == 0


async def test_a_cancel_after_capture_refunds_restocks_and_gives_the_coupon_back(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    code = unique_slug("BACK").upper()
    created = await http.post(
        "/api/coupons", headers=staff, json={"code": code, "kind": "percentage", "percent": "10"}
    )
    assert created.status_code == 201, created.text
    item = await product(http, staff, price=10_000, stock=4)
    shopper = await shopper_with_cart(http, [(item, 2)])
    applied = await http.post("/api/cart/coupon", headers=shopper.headers, json={"code": code})
    assert applied.status_code == 200, applied.text
    await http.put("/_sandbox/stripe/faults", json={"latencyMs": 1500})
    placed = await place(http, shopper)
    # "confirmed": the coupon is used, the stock about to be sold, the capture under way.
    await wait_for(http, shopper.headers, placed["id"], {"confirmed"})
    assert (await http.get(f"/api/coupons/{code}", headers=staff)).json()["usedCount"] == 1

    # The stock is sold: the (slow) capture is what runs now.
    async def sold() -> bool:
        return bool((await stock(http, staff, item["id"]))["onHand"] == 2)

    await eventually(sold)
    cancelled = await http.post(f"/api/orders/{placed['id']}/cancel", headers=shopper.headers)
    assert cancelled.status_code in (200, 202), cancelled.text
    await http.delete("/_sandbox/stripe/faults")
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "cancelled", order
    assert order["couponCode"] == code
    [intent] = await intents_for(http, placed["id"])
    assert intent["status"] == "succeeded"
    assert (
        await refunded(http, intent["id"]) == intent["amount_received"] == order["totals"]["total"]
    )
    assert order["payment"]["status"] == "refunded"
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (4, 0)  # sold, then returned
    assert (await http.get(f"/api/coupons/{code}", headers=staff)).json()["usedCount"] == 0
    # The cart it came from is open again, coupon and all, to order another time.
    cart = await http.get("/api/cart", headers=shopper.headers)
    assert cart.status_code == 200, cart.text
    assert (cart.json()["id"], cart.json()["couponCode"]) == (shopper.cart_id, code)
    assert [i["quantity"] for i in cart.json()["items"]] == [2]


async def test_an_order_with_a_labelled_parcel_cannot_be_cancelled(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """A queued order is still cancelled through its fulfilment (tests/fulfillment);
    once the warehouse has a label for a parcel of it, no more."""
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper)
    await wait_for(http, shopper.headers, placed["id"])
    fulfillment_id = await fulfilment_of(engine, placed["id"])
    [line] = await order_lines(engine, fulfillment_id)
    parcel = await http.post(
        f"/api/admin/fulfillments/{fulfillment_id}/shipments",
        headers=staff,
        json={"lines": [{"orderLineId": line["id"], "quantity": 1}]},
    )
    assert parcel.status_code == 201, parcel.text
    await label_bought(engine, parcel.json()["id"])
    refused = await http.post(f"/api/orders/{placed['id']}/cancel", headers=shopper.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "order_not_cancellable"


@pytest.mark.parametrize(
    "faults",
    [
        # A third of all Stripe calls fail with a 500 before doing anything.
        pytest.param({"failureRate": 0.35}, id="failures"),
        # A third take effect and then answer 500, their answer lost on the way back: the
        # retry must ask the same under the same key and be answered with the first
        # answer (one PaymentIntent, one capture, one refund), not make another.
        pytest.param({"lostAnswerRate": 0.35}, id="lost-answers"),
    ],
)
async def test_many_orders_under_gateway_faults_are_captured_exactly_once(
    http: httpx.AsyncClient, staff: dict[str, str], faults: dict[str, float]
) -> None:
    item = await product(http, staff, stock=50)
    shoppers = [await shopper_with_cart(http, [(item, 1)]) for _ in range(8)]
    # The SDK and Temporal retry them with the same idempotency keys.
    await http.put("/_sandbox/stripe/faults", json=faults)
    placed = await asyncio.gather(*(place(http, s) for s in shoppers))
    orders = await asyncio.gather(
        *(
            wait_for(http, s.headers, p["id"], within=120)
            for s, p in zip(shoppers, placed, strict=True)
        )
    )
    await http.delete("/_sandbox/stripe/faults")
    confirmed = [o for o in orders if o["status"] == "fulfillment_queued"]
    assert confirmed, [o["failureCode"] for o in orders]
    for order in orders:
        intents = await intents_for(http, order["id"])
        captured = [i for i in intents if i["status"] == "succeeded"]
        if order["status"] == "fulfillment_queued":
            assert len(intents) == 1, intents
            assert len(captured) == 1
            assert captured[0]["amount_received"] == order["totals"]["total"]
        else:
            for intent in captured:
                assert await refunded(http, intent["id"]) == intent["amount_received"]
    level = await stock(http, staff, item["id"])
    assert level["onHand"] == 50 - len(confirmed)
    assert level["reserved"] == 0


async def test_an_operator_cancelling_the_workflow_still_undoes_the_order(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    await wait_for(http, shopper.headers, placed["id"], {"requires_action"})
    # `temporal workflow cancel` (or the UI's Cancel button) instead of the API:
    await live.client.get_workflow_handle(workflow_id(placed["id"])).cancel()
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "cancelled"
    assert [i["status"] for i in await intents_for(http, placed["id"])] == ["canceled"]
    assert (await stock(http, staff, item["id"]))["reserved"] == 0


async def test_a_late_attempt_of_a_forward_step_holds_nothing_once_undone(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """An attempt that timed out but kept running (a hung connection) may finish after
    the compensations: it must not hold stock or money for the undone order."""
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_chargeDeclined")
    assert (await wait_for(http, shopper.headers, placed["id"]))["status"] == "failed"
    sessions = create_session_factory(engine)
    analytics = AnalyticsRecorder(enabled=False)
    orders = OrderActivities(sessions, live.settings, analytics)
    ref = OrderRef(order_id=placed["id"])
    with pytest.raises(ApplicationError) as late_reserve:
        await orders.reserve_stock(ReserveInput(order_id=placed["id"], ttl_seconds=60))
    assert late_reserve.value.type == "order_undone"
    payments = PaymentActivities(
        PaymentService(
            sessions, StripeGateway.from_settings(live.settings), live.settings, analytics
        )
    )
    for late in (payments.authorize, payments.capture):
        with pytest.raises(ApplicationError) as refused:
            await late(ref)
        assert refused.value.type == "order_undone"
    assert (await stock(http, staff, item["id"]))["reserved"] == 0
    assert [i["status"] for i in await intents_for(http, placed["id"])] == ["canceled"]


async def test_an_attempt_whose_create_answered_another_intent_confirms_the_recorded_one(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """Two authorise attempts of one order (one taken for lost but still running) could
    each get an intent from create: the one the payment row records first is the one
    confirmed and captured, and voided by the compensation, never the other."""
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper)
    assert (await wait_for(http, shopper.headers, placed["id"]))["status"] == "fulfillment_queued"
    [recorded] = await intents_for(http, placed["id"])
    payments = PaymentService(
        create_session_factory(engine),
        StripeGateway.from_settings(live.settings),
        live.settings,
        AnalyticsRecorder(enabled=False),
    )
    assert await payments._open(placed["id"], "pi_made_by_another_attempt") == recorded["id"]


class _RefundAnswersOnCue(StripeGateway):
    """The Stripe sandbox over HTTP, but a refund's answer comes back only on ``answer``
    (``made`` once the sandbox has refunded): a staff refund caught mid-call."""

    made: asyncio.Event
    answer: asyncio.Event

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int | None,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        result = await super().refund(
            intent_id,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        self.made.set()
        await self.answer.wait()
        return result


async def test_a_cancel_refunding_during_a_staff_refund_announces_both_refunds(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """The compensation's refund of what is left and a staff refund of part, at once: one
    waits for the other (the payment row's lock), so each ``payment.refunded`` says its own
    amount and together they say all of it. The compensation refunded outside that lock:
    the staff refund, reading the provider's total after it, took the compensation's
    money into the row, whose record then found nothing new to announce."""
    item = await product(http, staff, price=3000)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    total = order["totals"]["total"]
    sessions = create_session_factory(engine)
    analytics = AnalyticsRecorder(enabled=False)
    slow = _RefundAnswersOnCue.from_settings(live.settings)
    assert isinstance(slow, _RefundAnswersOnCue)
    slow.made, slow.answer = asyncio.Event(), asyncio.Event()

    async def staff_refund() -> None:
        async with transaction(sessions) as session:
            row = await OrderRepository(session).require(placed["id"])
            await payments.refund(session, slow, row, amount=1000, reason="dented", staff_id=None)

    staff_refunding = asyncio.ensure_future(staff_refund())
    await slow.made.wait()  # refunded at the provider, the payment row still locked
    service = PaymentService(
        sessions, StripeGateway.from_settings(live.settings), live.settings, analytics
    )
    cancelling = asyncio.ensure_future(service.void_or_refund(placed["id"]))
    await waiting_on_locks(engine, 1, query_like="%FROM payments%FOR UPDATE%")
    slow.answer.set()
    await staff_refunding
    assert await cancelling == "refunded"

    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == total
    async with sessions() as session:
        announced = await published(session, placed["id"], EventType.PAYMENT_REFUNDED)
    assert [(e.data["amount"], e.data["remaining"]) for e in announced] == [
        (1000, total - 1000),
        (total - 1000, 0),
    ]
