"""A return's label against the EasyPost sandbox over HTTP: issued with the approval from
the customer's address to the warehouse, bought once even when the carrier's answers
are lost, and voided when the return is not sent back in time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from integrations.shipping.factory import build_shipping_provider
from integrations.shipping.provider import LabelInUse, ShippingUnavailable
from models.returns import ReturnCreate, ReturnLineCreate, ReturnReason, ReturnStatus
from services.returns import ReturnLabels, ReturnRepository, ReturnService
from tests.factories import signed_up
from tests.live import LiveStack
from tests.returns.delivered import Parcel, days_ago, ship, write_order

EASYPOST = {"Authorization": "Bearer EZTK_test"}


async def _requested(http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack) -> str:
    user, _ = await signed_up(http)
    order, _ = await write_order(engine, user["id"], lines=[("prod_label", 2, 1200)])
    await ship(engine, order.id, [Parcel({0: 2}, days_ago(1))])
    async with transaction(create_session_factory(engine)) as session:
        request, _start = await ReturnService(session, live.settings).request(
            user["id"],
            order.id,
            ReturnCreate(
                lines=[ReturnLineCreate(product_id="prod_label", quantity=2)],
                reason=ReturnReason.WRONG_ITEM,
            ),
        )
    return request.id


async def _shipment(http: httpx.AsyncClient, provider_id: str) -> dict[str, Any]:
    response = await http.get(f"/_sandbox/easypost/v2/shipments/{provider_id}", headers=EASYPOST)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_label_is_bought_once_under_lost_answers_and_voided_on_cancel(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    return_id = await _requested(http, engine, live)
    sessions = create_session_factory(engine)
    labels = ReturnLabels(sessions, live.settings, build_shipping_provider(live.settings))

    # Half the carrier's calls take effect but answer 500: the step is retried.
    await http.put("/_sandbox/easypost/faults", json={"lostAnswerRate": 0.5})
    status = None
    for _ in range(40):
        try:
            status = await labels.approve(
                return_id, staff_id="usr_staff", auto=False, ship_by=timedelta(days=14)
            )
            break
        except ShippingUnavailable:
            continue
    await http.delete("/_sandbox/easypost/faults")
    assert status == ReturnStatus.APPROVED
    assert await labels.approve(return_id, staff_id=None, auto=True, ship_by=timedelta(days=1)) == (
        ReturnStatus.APPROVED
    )

    async with sessions() as session:
        row = await ReturnRepository(session).require(return_id)
    assert row.provider_shipment_id is not None
    assert (row.auto_approved, row.label_url is not None, row.tracking_code is not None) == (
        False,
        True,
        True,
    )
    shipment = await _shipment(http, row.provider_shipment_id)
    assert shipment["is_return"] is True
    assert shipment["to_address"]["street1"] == live.settings.ship_from_street
    assert shipment["from_address"]["street1"] == "123 Main St"
    assert shipment["tracker"]["tracking_code"] == row.tracking_code

    assert await labels.cancel(return_id) == ReturnStatus.CANCELLED
    assert await labels.cancel(return_id) == ReturnStatus.CANCELLED  # a retry
    assert (await _shipment(http, row.provider_shipment_id))["refund_status"] == "submitted"

    # Shipments a lost "create" answer left behind were never bought: one label only.
    held = await http.get("/_sandbox/easypost/shipments", params={"reference": return_id})
    assert held.status_code == 200, held.text
    bought = [s["id"] for s in held.json() if s.get("postage_label")]
    assert bought == [row.provider_shipment_id]


async def test_a_label_the_carrier_scanned_is_not_voided_and_the_return_stays_approved(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    """The ship-by time passed as the goods were sent (the carrier scanned the label):
    the cancel is refused ``label_in_use`` (non-retryable; ``ReturnWorkflow`` then waits
    for the goods) and the return stays approved, its label in use."""
    return_id = await _requested(http, engine, live)
    sessions = create_session_factory(engine)
    labels = ReturnLabels(sessions, live.settings, build_shipping_provider(live.settings))
    await labels.approve(return_id, staff_id=None, auto=True, ship_by=timedelta(days=14))
    async with sessions() as session:
        row = await ReturnRepository(session).require(return_id)
    provider_id = row.provider_shipment_id
    assert provider_id is not None
    shipment = await _shipment(http, provider_id)
    moved = await http.post(f"/_sandbox/easypost/trackers/{shipment['tracker']['id']}/advance")
    assert moved.status_code == 200, moved.text

    with pytest.raises(LabelInUse):
        await labels.cancel(return_id)
    async with sessions() as session:
        row = await ReturnRepository(session).require(return_id)
    assert row.status == ReturnStatus.APPROVED
    assert (await _shipment(http, provider_id))["refund_status"] == "rejected"
