"""Fulfilment on the live stack (API over HTTP, workers on every queue, the outbox relay):
an order placed through the API gets exactly one fulfilment, even when
``fulfillment.order_ready`` is delivered again; staff work it through the admin
endpoints (every error code); the customer sees the parcels and can still cancel until
a parcel has a label."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory, transaction
from models.events import DeliveryStatus, EventDelivery, EventReceipt
from models.fulfillment import Fulfillment, ShipmentStatus
from models.inventory import MAX_STOCK
from models.outbox import OutboxEvent
from models.workflow_starts import WorkflowStart
from tests.factories import fill_stock
from tests.fulfillment.helpers import (
    eventually,
    fulfilment_of,
    label_bought,
    order_lines,
    shopper_headers,
)
from tests.live import LiveStack
from tests.orders.helpers import (
    intents_for,
    place,
    product,
    refunded,
    shopper_with_cart,
    stock,
    wait_for,
)
from workflows.types.fulfillment import fulfillment_workflow_id

STARTER = "fulfillment_starter"


async def queued(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, quantities: list[int]
) -> tuple[dict[str, Any], Any, str, list[dict[str, Any]]]:
    """An order placed through the API, queued for fulfilment, and its fulfilment id."""
    items = [await product(http, staff, stock=10) for _ in quantities]
    shopper = await shopper_with_cart(http, list(zip(items, quantities, strict=True)))
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    return order, shopper, await fulfilment_of(engine, order["id"]), items


async def test_one_fulfilment_per_order_even_when_order_ready_is_delivered_again(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    order, _shopper, fulfillment_id, _ = await queued(http, staff, engine, [2, 1])
    workflow_id = fulfillment_workflow_id(order["id"])
    sessions = create_session_factory(engine)
    async with sessions() as session:
        event_id = (
            await session.exec(
                select(OutboxEvent.id).where(
                    OutboxEvent.aggregate_id == order["id"],
                    OutboxEvent.type == "fulfillment.order_ready",
                )
            )
        ).one()
    # As if the delivery's commit was lost after the start went out: no receipt, no
    # start row, a dead letter that staff replay.
    async with transaction(sessions) as session:
        await session.exec(
            delete(EventReceipt).where(
                col(EventReceipt.event_id) == event_id, col(EventReceipt.subscriber) == STARTER
            )
        )
        await session.exec(
            delete(WorkflowStart).where(col(WorkflowStart.workflow_id) == workflow_id)
        )
        await session.exec(
            update(EventDelivery)
            .where(
                col(EventDelivery.event_id) == event_id, col(EventDelivery.subscriber) == STARTER
            )
            .values(status=DeliveryStatus.FAILED, last_error="lost commit (test)")
        )
    replayed = await http.post(
        f"/api/admin/events/{event_id}/replay", headers=staff, json={"subscribers": [STARTER]}
    )
    assert replayed.status_code == 202, replayed.text

    async def handled_again() -> bool:
        async with sessions() as session:
            receipt = await session.get(EventReceipt, (event_id, STARTER))
            delivery = await session.get(EventDelivery, (event_id, STARTER))
        return receipt is not None and delivery is not None and delivery.status == "delivered"

    await eventually(handled_again, "the replayed delivery")
    async with sessions() as session:
        fulfilments = (
            await session.exec(
                select(func.count())
                .select_from(Fulfillment)
                .where(Fulfillment.order_id == order["id"])
            )
        ).one()
        starts = (
            await session.exec(
                select(func.count())
                .select_from(WorkflowStart)
                .where(WorkflowStart.workflow_id == workflow_id)
            )
        ).one()
    assert (fulfilments, starts) == (1, 1)
    runs = [w async for w in live.client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    assert len(runs) == 1
    view = await http.get(f"/api/admin/fulfillments/{fulfillment_id}", headers=staff)
    assert view.json()["status"] == "open"


async def test_staff_work_a_fulfilment_order_and_every_mistake_has_its_code(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    order, shopper, fulfillment_id, _ = await queued(http, staff, engine, [2, 1])
    base = f"/api/admin/fulfillments/{fulfillment_id}"
    [mugs, tea] = [line["id"] for line in await order_lines(engine, fulfillment_id)]

    listed = await http.get("/api/admin/fulfillments?status=open&limit=100", headers=staff)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] >= 1
    priorities = [f["priority"] for f in page["items"]]
    assert priorities == sorted(priorities, reverse=True)
    [found] = (
        await http.get(f"/api/admin/fulfillments?orderId={order['id']}", headers=staff)
    ).json()["items"]
    assert found["id"] == fulfillment_id
    one = (await http.get(base, headers=staff)).json()
    assert one["orderId"] == order["id"]
    assert one["shippingAddress"]["street"] == order["shippingAddress"]["street"]
    assert [(ln["quantity"], ln["unassigned"]) for ln in one["lines"]] == [(2, 2), (1, 1)]

    async def post(path: str, body: Any = None) -> httpx.Response:
        return await http.post(f"{base}{path}", headers=staff, json=body)

    def code(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json().get("code")

    assert code(
        await post("/shipments", {"lines": [{"orderLineId": "oline_x", "quantity": 1}]})
    ) == (
        422,
        "unknown_order_line",
    )
    assert code(await post("/shipments", {"lines": [{"orderLineId": mugs, "quantity": 3}]})) == (
        422,
        "quantity_exceeds_unassigned",
    )
    assert (await post("/shipments", {"lines": []})).status_code == 422
    created = await post(
        "/shipments", {"lines": [{"orderLineId": mugs, "quantity": 2}], "weightOz": 20}
    )
    assert created.status_code == 201, created.text
    parcel = created.json()
    assert (parcel["lines"], parcel["weightOz"]) == (
        [{"orderLineId": mugs, "productId": parcel["lines"][0]["productId"], "quantity": 2}],
        20.0,
    )
    assert parcel["status"] in {s.value for s in ShipmentStatus}

    held = await post("/hold", {"reason": "address to confirm"})
    assert held.status_code == 200, held.text
    assert (held.json()["status"], held.json()["holdReason"]) == ("on_hold", "address to confirm")
    assert code(await post("/shipments", {"lines": [{"orderLineId": tea, "quantity": 1}]})) == (
        409,
        "fulfillment_on_hold",
    )
    assert (await post("/hold", {"reason": ""})).status_code == 422
    released = await post("/release")
    assert released.status_code == 200, released.text
    assert released.json()["holdReason"] is None
    assert released.json()["status"] != "on_hold"
    assert code(await post("/release")) == (409, "fulfillment_not_on_hold")

    # The customer sees the parcel (without the label's URL) and its tracking.
    mine = (await http.get(f"/api/orders/{order['id']}", headers=shopper.headers)).json()
    [seen] = mine["shipments"]
    assert seen["id"] == parcel["id"]
    # Each item carries its line's id, by which parcels and returns name it (the items
    # had none: a customer learnt a line's id only from a parcel already packed).
    assert {(i["orderLineId"], i["productId"]) for i in mine["items"]} == {
        (ln["orderLineId"], ln["productId"]) for ln in one["lines"]
    }
    assert mine["items"][0]["orderLineId"] in {mugs, tea}
    assert "labelUrl" not in seen
    tracked = await http.get(
        f"/api/orders/{order['id']}/shipments/{parcel['id']}", headers=shopper.headers
    )
    assert tracked.status_code == 200, tracked.text
    history = tracked.json()["tracking"]
    assert tracked.json()["id"] == parcel["id"]
    # Whatever the carrier said so far (nothing, until the label is bought), oldest first.
    assert [e["occurredAt"] for e in history] == sorted(e["occurredAt"] for e in history)
    missing = await http.get(
        f"/api/orders/{order['id']}/shipments/shp_nope", headers=shopper.headers
    )
    assert code(missing) == (404, "shipment_not_found")
    _, stranger = await shopper_headers(http)
    assert code(
        await http.get(f"/api/orders/{order['id']}/shipments/{parcel['id']}", headers=stranger)
    ) == (404, "order_not_found")


async def test_fulfilment_endpoints_are_staff_only_and_validate_their_input(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    _, customer = await shopper_headers(http)
    assert (await http.get("/api/admin/fulfillments", headers=customer)).status_code == 403
    assert (
        await http.post(
            "/api/admin/fulfillments/ful_x/hold", headers=customer, json={"reason": "x"}
        )
    ).status_code == 403
    assert (await http.get("/api/admin/fulfillments?status=lost", headers=staff)).status_code == 422
    assert (await http.get("/api/admin/fulfillments?limit=101", headers=staff)).status_code == 422
    for method, path, body in [
        ("GET", "/api/admin/fulfillments/ful_missing", None),
        ("POST", "/api/admin/fulfillments/ful_missing/hold", {"reason": "x"}),
        ("POST", "/api/admin/fulfillments/ful_missing/release", None),
        ("POST", "/api/admin/fulfillments/ful_missing/cancel", None),
        (
            "POST",
            "/api/admin/fulfillments/ful_missing/shipments",
            {"lines": [{"orderLineId": "oline_x", "quantity": 1}]},
        ),
    ]:
        response = await http.request(method, path, headers=staff, json=body)
        assert (response.status_code, response.json()["code"]) == (404, "fulfillment_not_found")


async def test_the_customer_cancels_a_queued_order_refund_and_restock_included(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    order, shopper, fulfillment_id, [item] = await queued(http, staff, engine, [2])
    assert (await stock(http, staff, item["id"]))["onHand"] == 8
    cancelled = await http.post(
        f"/api/orders/{order['id']}/cancel", headers=shopper.headers, json={"reason": "too late"}
    )
    assert cancelled.status_code in (200, 202), cancelled.text
    done = await wait_for(http, shopper.headers, order["id"], {"cancelled"})
    assert done["status"] == "cancelled"
    [intent] = await intents_for(http, order["id"])
    assert await refunded(http, intent["id"]) == intent["amount_received"]
    assert intent["amount_received"] == order["totals"]["total"]
    assert done["payment"]["status"] == "refunded"
    assert "order cancelled" in [e["message"] for e in done["timeline"]]
    assert (await stock(http, staff, item["id"]))["onHand"] == 10
    fulfilment = (await http.get(f"/api/admin/fulfillments/{fulfillment_id}", headers=staff)).json()
    assert fulfilment["status"] == "cancelled"
    # Again: harmless.
    again = await http.post(f"/api/orders/{order['id']}/cancel", headers=shopper.headers)
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    staff_again = await http.post(f"/api/admin/fulfillments/{fulfillment_id}/cancel", headers=staff)
    # The workflow may have ended already: then the fulfilment is closed.
    assert staff_again.status_code in (200, 409), staff_again.text
    if staff_again.status_code == 409:
        assert staff_again.json()["code"] == "fulfillment_closed"
    else:
        assert staff_again.json()["status"] == "cancelled"


async def test_a_queued_order_cancelled_onto_full_stock_ends_its_units_not_put_back(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """Staff topped the product's stock up to within the order's 2 units of the most it
    holds, then the customer cancels: the undo's restock (a compensation, retried until
    it succeeds) failed on every attempt (``invalid_value``), so the order stayed
    queued, never refunded. Now the undo finishes: cancelled and refunded, the 2 units
    not put back, the order's timeline and the product's ledger saying so, and the
    inventory team emailed once (``inventory.stock_not_put_back``)."""
    order, shopper, _fulfillment_id, [item] = await queued(http, staff, engine, [2])
    await fill_stock(engine, item["id"], MAX_STOCK - 1)
    cancelled = await http.post(
        f"/api/orders/{order['id']}/cancel", headers=shopper.headers, json={"reason": "too late"}
    )
    assert cancelled.status_code in (200, 202), cancelled.text
    done = await wait_for(http, shopper.headers, order["id"], {"cancelled"})
    assert done["payment"]["status"] == "refunded"
    [intent] = await intents_for(http, order["id"])
    assert await refunded(http, intent["id"]) == intent["amount_received"]
    note = (
        f"stock of {item['id']}: 2 not put back on hand: it would pass the most a product "
        "holds (2,147,483,647); count them in by hand (an adjustment) once there is room"
    )
    assert note not in [e["message"] for e in done["timeline"]]  # the customer's
    ledger = (await http.get(f"/api/orders/{order['id']}", headers=staff)).json()
    [entry] = [e for e in ledger["timeline"] if e["message"] == note]
    assert entry["audience"] == "staff"
    assert entry["data"] == {"productId": item["id"], "notPutBack": 2, "limit": MAX_STOCK}
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (MAX_STOCK - 1, 0)
    [latest, *_] = level["movements"]
    assert (latest["kind"], latest["onHandDelta"], latest["reference"]) == (
        "return",
        0,
        order["id"],
    )

    # The inventory team is told, once: the relay delivers the event, its alert emails.
    async def told() -> OutboxEvent | None:
        async with create_session_factory(engine)() as session:
            return (
                await session.exec(
                    select(OutboxEvent)
                    .where(col(OutboxEvent.type) == "inventory.stock_not_put_back")
                    .where(col(OutboxEvent.aggregate_id) == item["id"])
                    .where(col(OutboxEvent.delivered_at).is_not(None))
                )
            ).first()

    event = await eventually(told, "inventory.stock_not_put_back delivered")
    assert event.data["orderId"] == order["id"]
    to = live.settings.inventory_alert_email
    mailbox = (await http.get("/_sandbox/mail/messages", params={"to": to})).json()
    about = [m["subject"] for m in mailbox if item["sku"] in m["subject"]]
    assert [s for s in about if s.startswith("Stock Not Put Back")] == [
        f"Stock Not Put Back: 2 of {item['name']} ({item['sku']}) to count in by hand"
    ]


async def test_once_a_parcel_has_a_label_neither_customer_nor_staff_can_cancel(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    order, shopper, fulfillment_id, _ = await queued(http, staff, engine, [1])
    [line] = await order_lines(engine, fulfillment_id)
    created = await http.post(
        f"/api/admin/fulfillments/{fulfillment_id}/shipments",
        headers=staff,
        json={"lines": [{"orderLineId": line["id"], "quantity": 1}]},
    )
    assert created.status_code == 201, created.text
    await label_bought(engine, created.json()["id"])
    refused = await http.post(f"/api/orders/{order['id']}/cancel", headers=shopper.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "order_not_cancellable")
    staff_refused = await http.post(
        f"/api/admin/fulfillments/{fulfillment_id}/cancel", headers=staff
    )
    assert (staff_refused.status_code, staff_refused.json()["code"]) == (
        409,
        "fulfillment_has_labels",
    )
    mine = (await http.get(f"/api/orders/{order['id']}", headers=shopper.headers)).json()
    assert mine["status"] != "cancelled"
