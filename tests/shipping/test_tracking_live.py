"""Parcels' whole lives on the live stack, as clients and carriers drive them: an order
placed through the API, its fulfilment split by staff into two parcels (each a
``ShipmentWorkflow``, child of the ``FulfillmentWorkflow``), each label bought from the
EasyPost sandbox, each tracker driven by hand, its signed webhooks through our endpoint
to the workflow; the parcels are delivered independently, the order only with the last,
and the customer is told once per parcel and once for the delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from models.fulfillment import ShipmentStatus
from services.fulfillment.repository import FulfillmentRepository
from tests.factories import staff_headers
from tests.live import LiveStack
from tests.orders.helpers import place, product, shopper_with_cart, wait_for
from workflows.types.fulfillment import shipment_workflow_id
from workflows.types.shipments import ShipmentView


@pytest.fixture
async def http(live: LiveStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
        yield client


async def poll(fetch: Any, ok: Any, what: str, seconds: float = 60) -> Any:
    for _ in range(int(seconds / 0.2)):
        found = await fetch()
        if ok(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: never; last {found}")


async def fulfilment_of(http: httpx.AsyncClient, staff: dict[str, str], order_id: str) -> Any:
    async def fetch() -> Any:
        answer = await http.get(
            "/api/admin/fulfillments", headers=staff, params={"orderId": order_id}
        )
        return answer.json()["items"]

    [found] = await poll(fetch, bool, f"the fulfilment of {order_id}")
    return found


async def tracker_of(http: httpx.AsyncClient, shipment_id: str) -> str:
    """The sandbox tracker of the parcel, once its workflow has bought the label."""

    async def fetch() -> Any:
        answer = await http.get("/_sandbox/easypost/shipments", params={"reference": shipment_id})
        return [s for s in answer.json() if s.get("tracker")]

    [shipment] = await poll(fetch, bool, f"the label of {shipment_id}")
    return str(shipment["tracker"]["id"])


async def parcel_view(
    http: httpx.AsyncClient, headers: dict[str, str], order_id: str, shipment_id: str
) -> dict[str, Any]:
    answer = await http.get(f"/api/orders/{order_id}/shipments/{shipment_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def drive_to_the_door(http: httpx.AsyncClient, tracker: str) -> None:
    for _ in range(3):  # in_transit, out_for_delivery, delivered: each sends its webhook
        moved = await http.post(f"/_sandbox/easypost/trackers/{tracker}/advance")
        assert moved.status_code == 200, moved.text


async def test_split_parcels_are_labelled_tracked_by_webhooks_and_delivered_independently(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    staff = await staff_headers(http, engine)
    mug = await product(http, staff, price=2500, stock=5)
    shopper = await shopper_with_cart(http, [(mug, 2)])
    placed = await place(http, shopper)
    order_id = placed["id"]
    await wait_for(http, shopper.headers, order_id, {"fulfillment_queued"})
    fulfilment = await fulfilment_of(http, staff, order_id)
    line = fulfilment["lines"][0]["orderLineId"]
    parcels = []
    for _ in range(2):  # one mug in each parcel
        created = await http.post(
            f"/api/admin/fulfillments/{fulfilment['id']}/shipments",
            headers=staff,
            json={"lines": [{"orderLineId": line, "quantity": 1}]},
        )
        assert created.status_code == 201, created.text
        parcels.append(created.json()["id"])
    first, second = parcels
    trackers = {sid: await tracker_of(http, sid) for sid in parcels}
    await wait_for(http, shopper.headers, order_id, {"shipped"})

    await drive_to_the_door(http, trackers[first])
    done = await live.client.get_workflow_handle(
        shipment_workflow_id(first), result_type=ShipmentView
    ).result()
    assert (done.status, done.delayed) == (ShipmentStatus.DELIVERED, False)
    arrived = await parcel_view(http, shopper.headers, order_id, first)
    assert [t["status"] for t in arrived["tracking"]] == [
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    waiting = await http.get(f"/api/orders/{order_id}", headers=shopper.headers)
    assert waiting.json()["status"] == "shipped"  # one mug is still on its way

    await drive_to_the_door(http, trackers[second])
    delivered = await wait_for(http, shopper.headers, order_id, {"delivered"})
    timeline = [entry["message"] for entry in delivered["timeline"]]
    for sid in parcels:
        assert sum(m.startswith(f"parcel {sid} shipped with") for m in timeline) == 1
        assert sum(m.startswith(f"parcel {sid}: in transit") for m in timeline) == 1
    assert timeline.count("every item has been delivered") == 1
    async with create_session_factory(engine)() as session:
        history = await FulfillmentRepository(session).tracking(second)
    assert [e.carrier_status for e in history].count("delivered") == 1

    async def inbox() -> list[str]:
        answer = await http.get("/_sandbox/mail/messages", params={"to": shopper.user["email"]})
        return [m["subject"] for m in answer.json()]

    shipped = f"A parcel from order {order_id} is on its way"
    arrived_subject = f"Your order {order_id} has been delivered"
    await poll(inbox, lambda s: s.count(shipped) >= 2 and arrived_subject in s, "the emails")
    await asyncio.sleep(1)  # a duplicate would have come by now
    subjects = await inbox()
    assert (subjects.count(shipped), subjects.count(arrived_subject)) == (2, 1)
