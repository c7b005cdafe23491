"""Asking for a return: only delivered lines, within the window, never more than was
delivered less what earlier returns take back; each refusal with its code."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import create_session_factory
from models.outbox import OutboxEvent
from models.workflow_starts import WorkflowStart
from tests.factories import signed_up
from tests.returns.delivered import Parcel, days_ago, ship, write_order
from workflows.types.fulfillment import RETURN_WORKFLOW, return_workflow_id

MUG, TEA = "prod_test_mug", "prod_test_tea"


async def _customer_order(
    client: httpx.AsyncClient, engine: AsyncEngine, parcels: list[Parcel]
) -> tuple[dict[str, str], str, list[str]]:
    """A customer, their order (mug x3, tea x1) and its parcels: (headers, order, lines)."""
    user, headers = await signed_up(client)
    order, lines = await write_order(engine, user["id"], lines=[(MUG, 3, 2000), (TEA, 1, 1000)])
    await ship(engine, order.id, parcels)
    return headers, order.id, [ln.id for ln in lines]


async def _ask(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, lines: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post(
        f"/api/orders/{order_id}/returns",
        headers=headers,
        json={"lines": lines, "reason": "no_longer_needed", "note": "too many mugs"},
    )


async def test_a_delivered_line_can_be_returned_and_the_workflow_start_is_recorded(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers, order_id, (mug, _tea) = await _customer_order(
        client, engine, [Parcel({0: 3}, days_ago(3))]
    )
    response = await _ask(client, headers, order_id, [{"orderLineId": mug, "quantity": 2}])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["reason"], body["note"]) == (
        "requested",
        "no_longer_needed",
        "too many mugs",
    )
    assert [(ln["orderLineId"], ln["quantity"]) for ln in body["lines"]] == [(mug, 2)]
    assert response.headers["Location"] == f"/api/returns/{body['id']}"

    async with create_session_factory(engine)() as session:
        start = (
            await session.exec(
                select(WorkflowStart).where(
                    WorkflowStart.workflow_id == return_workflow_id(body["id"])
                )
            )
        ).one()
        assert (start.workflow_type, start.task_queue) == (RETURN_WORKFLOW, "orders")
        assert start.input["lines"][0]["quantity"] == 2
        assert start.input["auto_approve"] is False
        events = (
            await session.exec(
                select(OutboxEvent.type, OutboxEvent.data).where(
                    OutboxEvent.aggregate_id == order_id
                )
            )
        ).all()
    assert [(t, d["returnId"]) for t, d in events] == [("return.requested", body["id"])]

    mine = await client.get(f"/api/returns/{body['id']}", headers=headers)
    assert mine.status_code == 200
    assert mine.json()["id"] == body["id"]
    listed = await client.get(f"/api/orders/{order_id}/returns", headers=headers)
    assert [r["id"] for r in listed.json()] == [body["id"]]

    # One unit of the mug is left to return, by its product id this time.
    more = await _ask(client, headers, order_id, [{"productId": MUG, "quantity": 2}])
    assert more.status_code == 422, more.text
    assert more.json()["code"] == "return_quantity_exceeds_delivered"
    assert (more.json()["delivered"], more.json()["alreadyReturned"]) == (3, 2)
    last = await _ask(client, headers, order_id, [{"productId": MUG, "quantity": 1}])
    assert last.status_code == 201, last.text


async def test_refusals_carry_their_codes(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    # Two mugs delivered 3 days ago, one still on its way; the tea delivered 40 days ago.
    headers, order_id, (mug, tea) = await _customer_order(
        client,
        engine,
        [Parcel({0: 2}, days_ago(3)), Parcel({0: 1}), Parcel({1: 1}, days_ago(40))],
    )
    cases: list[tuple[list[dict[str, Any]], int, str]] = [
        ([{"orderLineId": mug, "quantity": 3}], 422, "return_quantity_exceeds_delivered"),
        ([{"orderLineId": tea, "quantity": 1}], 409, "return_window_closed"),
        ([{"orderLineId": "oline_nope", "quantity": 1}], 422, "unknown_order_line"),
        ([{"productId": "prod_nope", "quantity": 1}], 422, "unknown_order_line"),
        ([{"orderLineId": mug, "productId": TEA, "quantity": 1}], 422, "unknown_order_line"),
        ([{"orderLineId": mug, "quantity": 0}], 422, "validation_error"),
        ([{"quantity": 1}], 422, "validation_error"),
    ]
    for lines, status, code in cases:
        response = await _ask(client, headers, order_id, lines)
        assert (response.status_code, response.json()["code"]) == (status, code), lines
    bad_reason = await client.post(
        f"/api/orders/{order_id}/returns",
        headers=headers,
        json={"lines": [{"orderLineId": mug, "quantity": 1}], "reason": "bored"},
    )
    assert (bad_reason.status_code, bad_reason.json()["code"]) == (422, "validation_error")
    long_note = await client.post(
        f"/api/orders/{order_id}/returns",
        headers=headers,
        json={
            "lines": [{"orderLineId": mug, "quantity": 1}],
            "reason": "other",
            "note": "x" * 1001,
        },
    )
    assert long_note.status_code == 422

    # A duplicate line adds up: 1 + 2 is more than the two delivered.
    twice = await _ask(
        client,
        headers,
        order_id,
        [{"orderLineId": mug, "quantity": 1}, {"orderLineId": mug, "quantity": 2}],
    )
    assert twice.json()["code"] == "return_quantity_exceeds_delivered"


async def test_a_line_or_an_order_not_delivered_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers, order_id, (mug, tea) = await _customer_order(client, engine, [Parcel({0: 3})])
    response = await _ask(client, headers, order_id, [{"orderLineId": mug, "quantity": 1}])
    assert (response.status_code, response.json()["code"]) == (409, "order_not_delivered")

    await ship(engine, order_id, [Parcel({1: 1}, days_ago(1))])
    response = await _ask(client, headers, order_id, [{"orderLineId": mug, "quantity": 1}])
    assert (response.status_code, response.json()["code"]) == (422, "line_not_delivered")
    response = await _ask(client, headers, order_id, [{"orderLineId": tea, "quantity": 1}])
    assert response.status_code == 201, response.text


async def test_someone_elses_order_or_return_is_not_found(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers, order_id, (mug, _) = await _customer_order(
        client, engine, [Parcel({0: 3}, days_ago(1))]
    )
    mine = await _ask(client, headers, order_id, [{"orderLineId": mug, "quantity": 1}])
    _, stranger = await signed_up(client)
    response = await _ask(client, stranger, order_id, [{"orderLineId": mug, "quantity": 1}])
    assert (response.status_code, response.json()["code"]) == (404, "order_not_found")
    theirs = await client.get(f"/api/returns/{mine.json()['id']}", headers=stranger)
    assert (theirs.status_code, theirs.json()["code"]) == (404, "return_not_found")
    listed = await client.get(f"/api/orders/{order_id}/returns", headers=stranger)
    assert listed.status_code == 404
    anonymous = await client.post(f"/api/orders/{order_id}/returns", json={})
    assert anonymous.status_code == 401


async def test_the_reasons_are_listed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/returns/reasons")
    assert response.status_code == 200
    reasons = {r["reason"]: r for r in response.json()}
    assert set(reasons) == {
        "damaged",
        "wrong_item",
        "not_as_described",
        "no_longer_needed",
        "other",
    }
    assert reasons["damaged"]["shopFault"]
    assert not reasons["other"]["shopFault"]
    assert not any(r["autoApproved"] for r in reasons.values())
