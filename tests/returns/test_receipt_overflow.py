"""A return received onto nearly full stock: refused at the edge before the workflow is
asked, and, when stock filled up meanwhile, a receive step that fails once with a typed,
non-retryable error and writes nothing (it failed on the database's integer overflow
and was retried forever)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.returns import ReturnActivities
from core.db import SessionFactory, create_session_factory, transaction
from core.errors import ValueOutOfRange
from core.settings import Settings
from integrations.payments.stripe import StripeGateway
from integrations.shipping.factory import build_shipping_provider
from models.inventory import MAX_STOCK, StockLevel, StockMovement
from models.outbox import OutboxEvent
from models.returns import ReturnLine, ReturnReason, ReturnRequest, ReturnStatus
from services.returns import ReturnLabels, ReturnRepository, ReturnSteps
from tests.factories import signed_up, staff_headers, stocked_product
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


async def _fill_stock(engine: AsyncEngine, product_id: str, on_hand: int) -> None:
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(StockLevel)
            .where(col(StockLevel.product_id) == product_id)
            .values(on_hand=on_hand)
        )


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


async def test_a_receipt_past_the_most_stock_a_product_holds_is_422_before_the_workflow(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Three units back onto 2,147,483,646: the receive step overflowed the integer
    column, forever. Refused now at the edge, naming the line's field, before the
    workflow hears of it (this return has none: asked, it answered 409
    return_not_actionable)."""
    staff, thing, request, line = await _approved_return(client, engine)
    await _fill_stock(engine, thing["id"], MAX_STOCK - 1)
    before = await _written(create_session_factory(engine), request)
    refused = await client.post(
        f"/api/admin/returns/{request.id}/receive",
        headers=staff,
        json={"lines": [{"returnLineId": line.id, "receivedQuantity": 2, "damagedQuantity": 1}]},
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    detail = (
        f"restocking 2 of {thing['id']} would pass the most stock a product holds (2,147,483,647)"
    )
    assert (problem["code"], problem["detail"]) == ("invalid_value", detail)
    assert problem["errors"] == [
        {
            "field": "lines.0.receivedQuantity",
            "in": "body",
            "message": detail,
            "type": "invalid_value",
        }
    ]
    assert await _written(create_session_factory(engine), request) == before
    # One unit fits: the workflow is asked (none here).
    fits = await client.post(
        f"/api/admin/returns/{request.id}/receive",
        headers=staff,
        json={"lines": [{"returnLineId": line.id, "receivedQuantity": 1, "damagedQuantity": 2}]},
    )
    assert (fits.status_code, fits.json()["code"]) == (409, "return_not_actionable")


async def test_a_receive_step_onto_stock_filled_meanwhile_fails_once_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """Stock topped up after the edge let the receipt through: the step's restock would
    pass the column. It raised the database's overflow, which Temporal retried forever
    (the return's steps retry until they succeed); now a non-retryable ``invalid_value``,
    the transaction rolled back: not the return, its line, the stock, the ledger nor an
    event written."""
    _staff, thing, request, line = await _approved_return(client, engine)
    await _fill_stock(engine, thing["id"], MAX_STOCK - 2)
    sessions = create_session_factory(engine)
    before = await _written(sessions, request)
    steps = ReturnSteps(sessions, StripeGateway.from_settings(settings))
    received = [ReceivedLine(return_line_id=line.id, received_quantity=3, damaged_quantity=0)]

    with pytest.raises(ValueOutOfRange):
        await steps.receive(request.id, received, staff_id=None)
    assert await _written(sessions, request) == before

    activities = ReturnActivities(
        ReturnLabels(sessions, settings, build_shipping_provider(settings)), steps
    )
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            activities.receive, ReceiveInput(return_id=request.id, lines=received)
        )
    assert (failed.value.type, failed.value.non_retryable) == ("invalid_value", True)
    assert await _written(sessions, request) == before

    # Two fit: received, restocked to the most a product holds.
    two = [ReceivedLine(return_line_id=line.id, received_quantity=2, damaged_quantity=1)]
    assert await steps.receive(request.id, two, staff_id=None) is not None
    status, counted, stock, movements, events = await _written(sessions, request)
    assert (status, counted, stock, len(movements), len(events)) == (
        ReturnStatus.RECEIVED,
        2,
        MAX_STOCK,
        1,
        1,
    )
