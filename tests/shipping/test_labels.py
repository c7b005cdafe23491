"""Booking a parcel's label against the EasyPost sandbox (over the real SDK): once,
however often it is asked; refused for an address the carrier cannot verify; refunded
while the parcel has not moved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.stack.process import free_port
from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.settings import Settings
from integrations.sandbox.easypost_wire import UNVERIFIABLE_ZIP
from integrations.shipping.factory import build_shipping_provider, ship_from_address
from integrations.shipping.provider import (
    Label,
    ParcelSpec,
    PostalAddress,
    ShipmentRequest,
    ShippingProvider,
    ShippingRejected,
)
from models.fulfillment import FulfillmentStatus, Shipment, ShipmentLabel, ShipmentStatus
from models.orders import OrderStatus
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.service import FulfillmentService
from services.fulfillment.shipments import ShipmentCancelled, ShipmentService
from services.order_repository import OrderRepository
from tests.fulfillment_rows import ADDRESS, OrderParcels, order_in_parcels, published, timeline
from tests.live import live_api


@pytest.fixture(scope="module")
async def sandboxed(settings: Settings) -> AsyncIterator[Settings]:
    """Settings whose EasyPost SDK reaches the sandbox on a live API."""
    live = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(live):
        yield live


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)


def service(sessions: SessionFactory, settings: Settings) -> ShipmentService:
    return ShipmentService(sessions, build_shipping_provider(settings), settings)


async def made(
    sessions: SessionFactory, status: ShipmentStatus = ShipmentStatus.PENDING
) -> OrderParcels:
    async with transaction(sessions) as session:
        return await order_in_parcels(session, status=status)


async def test_a_label_is_bought_once_however_often_booking_runs(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    order = await made(sessions)
    [shipment] = order.shipments
    shipments = service(sessions, sandboxed)

    first = await shipments.book_label(shipment.id)
    again = await shipments.book_label(shipment.id)
    assert first == again
    assert first.status is ShipmentStatus.LABEL_PURCHASED
    assert first.tracking_code
    async with sessions() as session:
        repo = FulfillmentRepository(session)
        saved = await repo.require_shipment(shipment.id)
        [label] = await repo.labels(shipment.id)
        fulfillment = await repo.require(order.fulfillment.id)
        placed = await OrderRepository(session).require(order.order.id)
        [shipped] = await published(session, order.order.id, EventType.SHIPMENT_SHIPPED)
        entries = await timeline(session, order.order.id)
    assert saved.provider_shipment_id == label.provider_shipment_id
    assert saved.provider_tracker_id
    assert saved.shipped_at is not None
    assert (label.tracking_code, label.label_url) == (saved.tracking_code, saved.label_url)
    assert (fulfillment.status, placed.status) == (FulfillmentStatus.SHIPPED, OrderStatus.SHIPPED)
    assert shipped.data["trackingCode"] == saved.tracking_code
    assert shipped.data["items"] == [
        {"productId": order.lines[0].product_id, "name": "Mug", "quantity": 2},
        {"productId": order.lines[1].product_id, "name": "Tea", "quantity": 1},
    ]
    assert sum(e.startswith(f"parcel {shipment.id} shipped with") for e in entries) == 1


async def test_a_retry_after_the_provider_shipment_was_saved_buys_that_one(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    """A crash between creating the provider's shipment and buying: the retry buys the
    label of the shipment the first attempt saved, not a second one."""
    order = await made(sessions)
    [shipment] = order.shipments
    provider = build_shipping_provider(sandboxed)
    shipments = ShipmentService(sessions, provider, sandboxed)
    provider_id = await _saved_at_provider(sessions, provider, sandboxed, shipment.id)
    booked = await shipments.book_label(shipment.id)
    saved, label = await _saved_with_label(sessions, shipment.id)
    assert saved.provider_shipment_id == provider_id
    assert label.provider_shipment_id == provider_id
    assert booked.tracking_code == saved.tracking_code


async def test_an_address_the_carrier_cannot_verify_is_refused(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    async with transaction(sessions) as session:
        order = await order_in_parcels(session)
        fulfillment = await FulfillmentRepository(session).require(order.fulfillment.id)
        fulfillment.shipping_address = ADDRESS | {"zip": UNVERIFIABLE_ZIP}
        session.add(fulfillment)
    with pytest.raises(ShippingRejected):
        await service(sessions, sandboxed).book_label(order.shipments[0].id)
    async with sessions() as session:
        saved = await FulfillmentRepository(session).require_shipment(order.shipments[0].id)
    assert saved.status == ShipmentStatus.PENDING


async def test_an_unused_label_is_refunded_and_the_parcel_cancelled(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    order = await made(sessions)
    [shipment] = order.shipments
    shipments = service(sessions, sandboxed)
    await shipments.book_label(shipment.id)
    assert await shipments.refund_label(shipment.id) is True
    # A retry after a lost answer: the same answer (the workflow marks the parcel
    # cancelled on it), nothing asked of the carrier twice.
    assert await shipments.refund_label(shipment.id) is True
    saved, label = await _saved_with_label(sessions, shipment.id)
    assert saved.status == ShipmentStatus.CANCELLED
    assert label.voided_at is not None


async def test_a_parcel_the_carrier_has_is_not_refunded(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    order = await made(sessions, status=ShipmentStatus.IN_TRANSIT)
    assert await service(sessions, sandboxed).refund_label(order.shipments[0].id) is False


async def test_a_label_the_carrier_scanned_is_kept_and_the_timeline_says_so(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    """The parcel's workflow is cancelled after the carrier scanned the label (before its
    webhook was recorded): the void is refused ``label_in_use``. The compensation answers
    False at once (the parcel stays with the carrier, tracked) instead of raising a
    refusal the activity retries forever; the order's timeline says why, once: the
    step retried after its answer was lost (the entry committed) wrote a second one."""
    order = await made(sessions)
    [shipment] = order.shipments
    shipments = service(sessions, sandboxed)
    await shipments.book_label(shipment.id)
    async with sessions() as session:
        booked = await FulfillmentRepository(session).require_shipment(shipment.id)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {sandboxed.resolved_easypost_api_key}"}
    ) as http:
        # The sandbox's own switch (beside the provider's ``/v2`` paths): the carrier scans.
        sandbox = sandboxed.resolved_easypost_base_url.removesuffix("/v2")
        moved = await http.post(f"{sandbox}/trackers/{booked.provider_tracker_id}/advance")
    assert moved.status_code == 200, moved.text

    assert await shipments.refund_label(shipment.id) is False
    assert await shipments.refund_label(shipment.id) is False  # the retry
    async with sessions() as session:
        saved = await FulfillmentRepository(session).require_shipment(shipment.id)
        [label] = await FulfillmentRepository(session).labels(shipment.id)
        entries = await timeline(session, order.order.id)
    assert saved.status == ShipmentStatus.LABEL_PURCHASED
    assert label.voided_at is None
    kept = (
        f"parcel {shipment.id} not cancelled: the carrier has scanned its label, so it "
        "cannot be voided; the parcel stays tracked"
    )
    assert entries.count(kept) == 1


async def _at_carrier(settings: Settings, provider_shipment_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {settings.resolved_easypost_api_key}"}
    ) as http:
        response = await http.get(
            f"{settings.resolved_easypost_base_url}/shipments/{provider_shipment_id}"
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _saved_at_provider(
    sessions: SessionFactory, provider: ShippingProvider, settings: Settings, shipment_id: str
) -> str:
    """What a booking does before it buys: the provider's shipment, its id saved."""
    created = await provider.create_shipment(
        ShipmentRequest(
            reference=shipment_id,
            to_address=PostalAddress(
                street1=ADDRESS["street"], city="Boston", state="MA", zip="02110", country="US"
            ),
            from_address=ship_from_address(settings),
            parcel=ParcelSpec(weight_oz=16),
        )
    )
    async with transaction(sessions) as session:
        repo = FulfillmentRepository(session)
        row = await repo.require_shipment(shipment_id, lock=True)
        row.provider_shipment_id = created.provider_shipment_id
        repo.stage(row)
    return created.provider_shipment_id


async def _saved_with_label(
    sessions: SessionFactory, shipment_id: str
) -> tuple[Shipment, ShipmentLabel]:
    """The parcel's row as saved and its label (one, and only one)."""
    async with sessions() as session:
        repo = FulfillmentRepository(session)
        saved = await repo.require_shipment(shipment_id)
        [label] = await repo.labels(shipment_id)
    return saved, label


async def _cancel_fulfilment(sessions: SessionFactory, fulfillment_id: str) -> None:
    async with transaction(sessions) as session:
        await FulfillmentService(session).cancel(fulfillment_id, "customer changed their mind")


@pytest.mark.parametrize("next_step", ["booking retried", "parcel compensated"])
async def test_a_label_bought_before_a_cancel_it_never_saw_is_voided(
    sessions: SessionFactory, sandboxed: Settings, next_step: str
) -> None:
    """A booking bought the label and died before recording it (or its answer was lost);
    staff cancelled the fulfilment meanwhile, the parcel still pending in the rows. The
    next step, the booking's retry (it finds the parcel cancelled) or the parcel's
    compensation (its workflow cancelled), voids the label paid for."""
    order = await made(sessions)
    [shipment] = order.shipments
    provider = build_shipping_provider(sandboxed)
    shipments = ShipmentService(sessions, provider, sandboxed)
    provider_id = await _saved_at_provider(sessions, provider, sandboxed, shipment.id)
    await provider.buy_label(provider_id)  # the answer that was lost
    await _cancel_fulfilment(sessions, order.fulfillment.id)

    if next_step == "booking retried":
        with pytest.raises(ShipmentCancelled):
            await shipments.book_label(shipment.id)
    else:
        await shipments.refund_label(shipment.id)
    assert (await _at_carrier(sandboxed, provider_id))["refund_status"] == "submitted"
    async with sessions() as session:
        saved = await FulfillmentRepository(session).require_shipment(shipment.id)
    assert saved.status == ShipmentStatus.CANCELLED


class _CancelledWhileBuying:
    """The carrier's answer to a purchase comes after staff cancelled the fulfilment."""

    def __init__(self, provider: ShippingProvider, cancel: Any) -> None:
        self._provider = provider
        self._cancel = cancel
        self.name = provider.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def buy_label(self, provider_shipment_id: str) -> Label:
        label = await self._provider.buy_label(provider_shipment_id)
        await self._cancel()
        return label


async def test_a_label_bought_while_the_fulfilment_is_cancelled_is_voided(
    sessions: SessionFactory, sandboxed: Settings
) -> None:
    """Staff cancel the fulfilment (the parcel pending) while the carrier sells its label:
    the booking records the label voided, and the carrier has voided it; the parcel stays
    cancelled and a retry changes nothing."""
    order = await made(sessions)
    [shipment] = order.shipments
    provider = _CancelledWhileBuying(
        build_shipping_provider(sandboxed),
        lambda: _cancel_fulfilment(sessions, order.fulfillment.id),
    )
    shipments = ShipmentService(sessions, provider, sandboxed)

    booked = await shipments.book_label(shipment.id)
    assert booked.status is ShipmentStatus.CANCELLED
    with pytest.raises(ShipmentCancelled):
        await shipments.book_label(shipment.id)  # a retry
    saved, label = await _saved_with_label(sessions, shipment.id)
    assert saved.status == ShipmentStatus.CANCELLED
    assert label.voided_at is not None
    assert saved.provider_shipment_id is not None
    assert (await _at_carrier(sandboxed, saved.provider_shipment_id))["refund_status"] == (
        "submitted"
    )
