"""A return received onto nearly full stock: the receipt is recorded and refunded as any
other, its undamaged units that would pass the most a product holds left off the stock
and noted for staff. It failed on the database's integer overflow and was retried
forever, then (refused as ``invalid_value``) failed the return's workflow."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.returns import ReturnActivities
from core.db import SessionFactory, create_session_factory, transaction
from core.settings import Settings
from integrations.payments.stripe import StripeGateway
from integrations.shipping.factory import build_shipping_provider
from models.inventory import MAX_STOCK, StockLevel, StockMovement
from models.orders import TimelineAudience
from models.outbox import OutboxEvent
from models.returns import ReturnLine, ReturnReason, ReturnRequest, ReturnStatus
from services.order_repository import OrderRepository
from services.returns import ReturnLabels, ReturnRepository, ReturnSteps
from tests.factories import fill_stock, signed_up, staff_headers, stocked_product
from tests.returns.delivered import write_order
from workflows.types.returns import ReceivedLine, ReceiveInput


async def _approved_return(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> tuple[dict[str, str], dict[str, Any], ReturnRequest, ReturnLine]:
    """Staff headers, a product with one unit in stock, and an approved return (no
    workflow) of three of it, delivered."""
    staff = await staff_headers(client, engine)
    thing = await stocked_product(client, staff, price=1000, stock=1)
    user, _headers = await signed_up(client)
    order, [line] = await write_order(engine, user["id"], lines=[(thing["id"], 3, 1000)])
    async with transaction(create_session_factory(engine)) as session:
        request = ReturnRequest(
            order_id=order.id,
            user_id=user["id"],
            status=ReturnStatus.APPROVED,
            reason=ReturnReason.NO_LONGER_NEEDED,
        )
        row = ReturnLine(
            return_id=request.id, order_line_id=line.id, product_id=thing["id"], quantity=3
        )
        await ReturnRepository(session).add(request, [row])
    return staff, thing, request, row


async def _written(sessions: SessionFactory, request: ReturnRequest) -> tuple[Any, ...]:
    """What a receipt writes: the return's status, its line's counts, the stock, the
    ledger's return movements and the return's events."""
    async with sessions() as session:
        status = (await ReturnRepository(session).require(request.id)).status
        [line] = await ReturnRepository(session).lines([request.id])
        stock = (
            await session.exec(
                select(StockLevel.on_hand).where(col(StockLevel.product_id) == line.product_id)
            )
        ).one()
        movements = (
            await session.exec(
                select(StockMovement.id).where(col(StockMovement.reference) == line.id)
            )
        ).all()
        events = (
            await session.exec(
                select(OutboxEvent.id)
                .where(col(OutboxEvent.type) == "return.received")
                .where(col(OutboxEvent.aggregate_id) == request.order_id)
            )
        ).all()
    return status, line.received_quantity, stock, list(movements), list(events)


async def test_a_receipt_onto_nearly_full_stock_is_not_refused_at_the_edge(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Three units back onto 2,147,483,646: the edge answered 422 ``invalid_value`` and
    recorded nothing, so the customer's refund waited for room in the stock. The receipt
    is a fact and the refund owed: the workflow is asked (this return has none: 409
    ``return_not_actionable``), and its receive step leaves what does not fit off the
    stock (below)."""
    staff, thing, request, line = await _approved_return(client, engine)
    await fill_stock(engine, thing["id"], MAX_STOCK - 1)
    asked = await client.post(
        f"/api/admin/returns/{request.id}/receive",
        headers=staff,
        json={"lines": [{"returnLineId": line.id, "receivedQuantity": 2, "damagedQuantity": 1}]},
    )
    assert (asked.status_code, asked.json()["code"]) == (409, "return_not_actionable")


async def test_a_receive_step_onto_stock_filled_meanwhile_receives_and_notes_what_did_not_fit(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """Stock topped up so that the receipt's units would pass the column. The step raised
    the database's overflow, retried forever; then a non-retryable ``invalid_value``, which
    failed the return's workflow, the customer never refunded. Now the receipt is recorded
    (the refund fixed as for any receipt), the units are not put back on hand: a
    ``return`` movement of 0 and the order's timeline say how many, and one
    ``inventory.stock_not_put_back`` event tells staff. The step answers a repeat as the
    first time, writing nothing more."""
    _staff, thing, request, line = await _approved_return(client, engine)
    await fill_stock(engine, thing["id"], MAX_STOCK - 2)
    sessions = create_session_factory(engine)
    steps = ReturnSteps(sessions, StripeGateway.from_settings(settings))
    activities = ReturnActivities(
        ReturnLabels(sessions, settings, build_shipping_provider(settings)), steps
    )
    received = [ReceivedLine(return_line_id=line.id, received_quantity=3, damaged_quantity=0)]
    receive = ReceiveInput(return_id=request.id, lines=received)

    amount = await ActivityEnvironment().run(activities.receive, receive)
    assert amount is not None
    status, counted, stock, movements, events = await _written(sessions, request)
    assert (status, counted, stock, len(movements), len(events)) == (
        ReturnStatus.RECEIVED,
        3,
        MAX_STOCK - 2,
        1,
        1,
    )
    note = (
        "3 not put back on hand: it would pass the most a product holds (2,147,483,647); "
        "count them in by hand (an adjustment) once there is room"
    )
    async with sessions() as session:
        [movement] = (
            await session.exec(select(StockMovement).where(col(StockMovement.id) == movements[0]))
        ).all()
        timeline = await OrderRepository(session).events(request.order_id, TimelineAudience.STAFF)
    assert (movement.kind, movement.on_hand_delta, movement.reason) == (
        "return",
        0,
        f"return {request.id}: {note}",
    )
    [entry] = [e for e in timeline if e.message.endswith(note)]
    assert entry.message == f"return {request.id}, stock of {thing['id']}: {note}"
    assert entry.data == {
        "returnId": request.id,
        "returnLineId": line.id,
        "productId": thing["id"],
        "notPutBack": 3,
        "limit": MAX_STOCK,
    }
    assert entry.audience == TimelineAudience.STAFF  # the customer's reads leave it out

    assert await ActivityEnvironment().run(activities.receive, receive) == amount
    assert await _written(sessions, request) == (status, counted, stock, movements, events)
    async with sessions() as session:
        told = (
            await session.exec(
                select(OutboxEvent.data)
                .where(col(OutboxEvent.type) == "inventory.stock_not_put_back")
                .where(col(OutboxEvent.aggregate_id) == thing["id"])
            )
        ).all()
    assert told == [  # once, though the step ran twice
        {
            "productId": thing["id"],
            "quantity": 3,
            "limit": MAX_STOCK,
            "orderId": request.order_id,
            "returnId": request.id,
            "reference": line.id,
        }
    ]
