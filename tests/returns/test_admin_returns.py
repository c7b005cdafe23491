"""Staff's view of returns: listed newest first and filtered by status and order; the
customer's own view; bodies checked at the edge before any workflow hears of them."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import signed_up, staff_headers
from tests.returns.delivered import Parcel, days_ago, ship, write_order


async def test_staff_list_filter_and_read_returns(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    staff = await staff_headers(client, engine)
    user, headers = await signed_up(client)
    order, _ = await write_order(engine, user["id"], lines=[("prod_a", 2, 1200)])
    await ship(engine, order.id, [Parcel({0: 2}, days_ago(1))])
    made = []
    for reason in ("damaged", "other"):
        response = await client.post(
            f"/api/orders/{order.id}/returns",
            headers=headers,
            json={"lines": [{"productId": "prod_a", "quantity": 1}], "reason": reason},
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])

    listed = await client.get(
        "/api/admin/returns", headers=staff, params={"orderId": order.id, "status": "requested"}
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert ([r["id"] for r in body["items"]], body["total"]) == (made[::-1], 2)
    paged = await client.get(
        "/api/admin/returns", headers=staff, params={"orderId": order.id, "limit": 1, "page": 2}
    )
    assert [r["id"] for r in paged.json()["items"]] == [made[0]]
    none = await client.get(
        "/api/admin/returns", headers=staff, params={"orderId": order.id, "status": "closed"}
    )
    assert none.json()["total"] == 0
    bad = await client.get("/api/admin/returns", headers=staff, params={"status": "lost"})
    assert bad.status_code == 422

    one = await client.get(f"/api/admin/returns/{made[0]}", headers=staff)
    assert (one.json()["reason"], one.json()["lines"][0]["name"]) == ("damaged", "Thing 0")
    missing = await client.get("/api/admin/returns/ret_nope", headers=staff)
    assert (missing.status_code, missing.json()["code"]) == (404, "return_not_found")
    of_order = await client.get(f"/api/orders/{order.id}/returns", headers=staff)
    assert [r["id"] for r in of_order.json()] == made
    # Staff read any customer's return where the customer reads it, as the README says.
    as_customer_reads = await client.get(f"/api/returns/{made[0]}", headers=staff)
    assert as_customer_reads.status_code == 200, as_customer_reads.text
    assert as_customer_reads.json() == one.json()

    # Customers are not staff; bodies are checked before the workflow is asked.
    assert (await client.get("/api/admin/returns", headers=headers)).status_code == 403
    refused = await client.post(f"/api/admin/returns/{made[0]}/approve", headers=headers)
    assert refused.status_code == 403
    blank = await client.post(
        f"/api/admin/returns/{made[0]}/decline", headers=staff, json={"reason": ""}
    )
    assert blank.status_code == 422
    spaces = await client.post(
        f"/api/admin/returns/{made[0]}/decline", headers=staff, json={"reason": "  \n "}
    )
    assert (spaces.status_code, spaces.json()["code"]) == (422, "validation_error")
    assert spaces.json()["errors"][0]["field"] == "reason"
    blank_note = await client.post(
        f"/api/admin/returns/{made[0]}/settle", headers=staff, json={"amount": 0, "note": " "}
    )
    assert (blank_note.status_code, blank_note.json()["code"]) == (422, "validation_error")
    negative = await client.post(
        f"/api/admin/returns/{made[0]}/receive",
        headers=staff,
        json={"lines": [{"returnLineId": "rline_x", "receivedQuantity": -1}]},
    )
    assert negative.status_code == 422
    unknown = await client.post(
        "/api/admin/returns/ret_nope/decline", headers=staff, json={"reason": "no"}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "return_not_found")
