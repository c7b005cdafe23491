"""GET /api/orders/{id}/events over real HTTP while OrderWorkflow runs a real checkout."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.factories import signed_up
from tests.orders.helpers import place, product, shopper_with_cart

# The order's path through a checkout with 3-D Secure, in the order statuses move.
PIPELINE = [
    "pending",
    "reserved",
    "requires_action",
    "payment_authorized",
    "confirmed",
    "fulfillment_queued",
]


async def test_the_stream_follows_a_checkout_and_closes_when_it_settles(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    url = f"/api/orders/{placed['id']}/events"
    _, stranger = await signed_up(http)
    assert (await http.get(url, headers=stranger)).status_code == 404

    events: list[dict[str, Any]] = []
    authenticated = False
    async with http.stream("GET", url, headers=shopper.headers, timeout=60) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in stream.aiter_lines():
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if fields.get("event") == "order":
                order = json.loads(fields["data"])
                events.append({"id": fields["id"], "order": order})
                # The order holds at requires_action until the customer authenticates:
                # the stream has shown it before anyone acts.
                if order["status"] == "requires_action" and not authenticated:
                    assert (await http.get(order["nextActionUrl"])).status_code == 200
                    authenticated = True
            fields = {}
    # The stream ended by itself once the order settled.
    statuses = [e["order"]["status"] for e in events]
    assert authenticated, statuses
    assert statuses[-1] == "fulfillment_queued", statuses
    assert len(statuses) >= 2
    # Forward only, each event a new state (a burst of commits may arrive as one).
    assert statuses == sorted(statuses, key=PIPELINE.index), statuses
    assert len({e["id"] for e in events}) == len(events)
    final = events[-1]["order"]
    assert list(dict.fromkeys(t["status"] for t in final["timeline"])) == PIPELINE
    # The last event is the order as GET shows it, and its id is the ETag.
    got = await http.get(f"/api/orders/{placed['id']}", headers=shopper.headers)
    assert got.json() == final
    assert got.headers["etag"] == f'"{events[-1]["id"]}"'
    # An EventSource reconnecting with the final id is told there is nothing more.
    again = await http.get(url, headers=shopper.headers | {"Last-Event-ID": events[-1]["id"]})
    assert again.status_code == 204
    # An EventSource polyfill sends it in the query instead (``api.deps.last_event_id``);
    # the header wins when both come.
    final_id = events[-1]["id"]
    polyfill = await http.get(url, headers=shopper.headers, params={"lastEventId": final_id})
    assert polyfill.status_code == 204, polyfill.text
    both = await http.get(
        url,
        headers=shopper.headers | {"Last-Event-ID": final_id},
        params={"lastEventId": events[0]["id"]},
    )
    assert both.status_code == 204, both.text
