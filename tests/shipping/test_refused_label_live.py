"""A label the carrier refuses, fixed by staff on the live stack: an order placed to an
address the EasyPost sandbox cannot verify (zip ``00000``), its parcel's label refused
(the fulfilment goes on hold, the workflow waits), staff correct the address through
``POST /api/admin/shipments/{id}/address`` and the workflow buys the label for it; every
mistake has its code."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from integrations.sandbox.easypost_wire import UNVERIFIABLE_ZIP
from models.fulfillment import ShipmentStatus
from tests.factories import staff_headers
from tests.live import LiveStack
from tests.orders.helpers import ADDRESS, order_body, product, shopper_with_cart, wait_for
from tests.shipping.test_tracking_live import fulfilment_of, http, poll, tracker_of
from workflows.types.fulfillment import shipment_workflow_id
from workflows.types.shipments import ShipmentView

__all__ = ["http"]  # the live API client fixture
CORRECTED = {"street": "12 Beacon St", "city": "Boston", "state": "MA", "zip": "02108"}


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


async def test_staff_correct_a_refused_address_and_the_label_is_bought_for_it(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    staff = await staff_headers(http, engine)
    mug = await product(http, staff, price=2500, stock=5)
    shopper = await shopper_with_cart(http, [(mug, 1)])
    nowhere = ADDRESS | {"zip": UNVERIFIABLE_ZIP}
    placed = await http.post(
        "/api/orders",
        headers=shopper.headers,
        json=order_body(shopper.cart_id) | {"shippingAddress": nowhere},
    )
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    await wait_for(http, shopper.headers, order_id, {"fulfillment_queued"})
    fulfilment = await fulfilment_of(http, staff, order_id)
    created = await http.post(
        f"/api/admin/fulfillments/{fulfilment['id']}/shipments",
        headers=staff,
        json={"lines": [{"orderLineId": fulfilment["lines"][0]["orderLineId"], "quantity": 1}]},
    )
    assert created.status_code == 201, created.text
    parcel = created.json()["id"]
    handle = live.client.get_workflow_handle(shipment_workflow_id(parcel))

    async def view() -> ShipmentView:
        found: ShipmentView = await handle.query("status", result_type=ShipmentView)
        return found

    stuck = await poll(view, lambda v: v.awaiting_retry, "the refused label")
    assert stuck.status is ShipmentStatus.PENDING
    assert stuck.problem is not None

    async def admin_view() -> dict[str, Any]:
        answer = await http.get(f"/api/admin/fulfillments/{fulfilment['id']}", headers=staff)
        found: dict[str, Any] = answer.json()
        return found

    held = await poll(admin_view, lambda f: f["status"] == "on_hold", "the hold")
    assert "label refused" in (held["holdReason"] or "")

    path = f"/api/admin/shipments/{parcel}/address"
    unknown = await http.post(
        "/api/admin/shipments/shp_nope/address", headers=staff, json=CORRECTED
    )
    assert code(unknown) == (404, "shipment_not_found")
    stateless = await http.post(path, headers=staff, json=CORRECTED | {"state": None})
    assert code(stateless) == (422, "invalid_address")
    nowhere_country = await http.post(path, headers=staff, json=CORRECTED | {"country": "ZZ"})
    assert code(nowhere_country) == (422, "invalid_address")
    customer = await http.post(path, headers=shopper.headers, json=CORRECTED)
    assert customer.status_code == 403, customer.text
    assert (await view()).awaiting_retry  # none of those touched it

    fixed = await http.post(path, headers=staff, json=CORRECTED)
    assert fixed.status_code == 202, fixed.text
    assert (fixed.json()["id"], fixed.json()["status"]) == (parcel, "pending")
    await tracker_of(http, parcel)  # the sandbox sold a label for the parcel
    labelled = await poll(
        admin_view,
        lambda f: f["shipments"][0]["status"] == "label_purchased",
        "the label for the corrected address",
    )
    assert labelled["shippingAddress"]["zip"] == "02108"
    assert labelled["shippingAddress"]["state"] == "MA"
    bought = await http.get("/_sandbox/easypost/shipments", params={"reference": parcel})
    [sold] = [s for s in bought.json() if s.get("tracker")]
    assert sold["to_address"]["zip"] == "02108"
    assert (await view()).problem is None

    again = await http.post(path, headers=staff, json=CORRECTED)
    assert code(again) == (409, "shipment_not_awaiting_address")
    mine = await http.get(f"/api/orders/{order_id}", headers=shopper.headers)
    timeline = [entry["message"] for entry in mine.json()["timeline"]]
    assert f"parcel {parcel}: shipping address corrected, label to be tried again" in timeline
