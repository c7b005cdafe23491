"""``shipment.shipped``, ``order.delivered`` and ``shipment.delayed``: the customer's
per-parcel and delivered emails, the staff's alert, each sent once however often the
event is delivered (through the real SendGrid SDK to the sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from integrations.shipping.provider import CarrierStatus, TrackerState, TrackingDetail
from models.fulfillment import ShipmentStatus
from services.email import EmailService
from services.events.handlers import (
    order_delivered_email,
    shipment_delayed_alert,
    shipment_shipped_email,
)
from services.events.handling import handle_once
from services.fulfillment.tracking import ShipmentTracking
from tests.events.conftest import MailApi
from tests.factories import unique_email
from tests.fulfillment_rows import order_in_parcels, published

TIMES = "\N{MULTIPLICATION SIGN}"


def delivered(shipment_id: str) -> TrackerState:
    at = datetime(2026, 12, 2, 15, tzinfo=UTC)
    return TrackerState(
        tracker_id=f"trk_{shipment_id}",
        tracking_code=f"9400{shipment_id}",
        status=CarrierStatus.DELIVERED,
        shipment_id=None,
        details=[
            TrackingDetail(
                status=CarrierStatus.DELIVERED,
                message="Delivered",
                location="Boston, MA",
                occurred_at=at,
            )
        ],
        updated_at=at,
    )


async def test_each_parcel_is_announced_once_with_its_tracking_link(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    settings = mail_api.settings
    async with transaction(db_sessions) as session:
        made = await order_in_parcels(
            session, email=unique_email("parcel"), status=ShipmentStatus.LABEL_PURCHASED
        )
        [shipment] = made.shipments
        url = f"https://tools.usps.com/go/TrackConfirmAction?tLabels=9400{shipment.id}"
        # What ShipmentService publishes with the label (tests/shipping covers it live).
        event = await publish(
            session,
            EventType.SHIPMENT_SHIPPED,
            made.order.id,
            {
                "orderId": made.order.id,
                "shipmentId": shipment.id,
                "carrier": "USPS",
                "service": "Priority",
                "trackingCode": f"9400{shipment.id}",
                "trackingUrl": url,
                "items": [{"productId": "p1", "name": "Mug", "quantity": 2}],
            },
        )
    subscriber = shipment_shipped_email(emails, settings)
    assert await handle_once(db_sessions, subscriber, event.id) is True
    assert await handle_once(db_sessions, subscriber, event.id) is False

    [mail] = await mail_api.mailbox(made.order.email)
    assert mail["subject"] == f"A parcel from order {made.order.id} is on its way"
    assert f"Tracking number: 9400{shipment.id}" in mail["text"]
    assert f"Track it: {url}" in mail["text"]
    assert f"2 {TIMES} Mug" in mail["text"]
    assert f"/api/orders/{made.order.id}/shipments/{shipment.id}" in mail["text"]
    assert url.replace("&", "&amp;") in mail["html"]


async def test_the_order_is_reported_delivered_once_when_its_last_parcel_arrives(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    async with transaction(db_sessions) as session:
        made = await order_in_parcels(
            session,
            email=unique_email("delivered"),
            parcels=[[(0, 2)], [(1, 1)]],
            status=ShipmentStatus.IN_TRANSIT,
        )
    tracking = ShipmentTracking(db_sessions)
    for shipment in made.shipments:
        await tracking.record_update(shipment.id, delivered(shipment.id))
    async with db_sessions() as session:
        [event] = await published(session, made.order.id, EventType.ORDER_DELIVERED)
    subscriber = order_delivered_email(emails, mail_api.settings)
    assert await handle_once(db_sessions, subscriber, event.id) is True
    assert await handle_once(db_sessions, subscriber, event.id) is False

    [mail] = await mail_api.mailbox(made.order.email)
    assert mail["subject"] == f"Your order {made.order.id} has been delivered"
    assert f"2 {TIMES} Mug" in mail["text"]
    assert f"1 {TIMES} Tea" in mail["text"]
    assert "within 30 days" in mail["text"]


async def test_staff_are_alerted_about_a_quiet_parcel(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    staff = unique_email("warehouse")
    settings = mail_api.settings.model_copy(update={"fulfillment_alert_email": staff})
    async with transaction(db_sessions) as session:
        made = await order_in_parcels(session, status=ShipmentStatus.IN_TRANSIT)
    [shipment] = made.shipments
    quiet = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert await ShipmentTracking(db_sessions).mark_delayed(shipment.id, 72, quiet)
    async with db_sessions() as session:
        [event] = await published(session, made.order.id, EventType.SHIPMENT_DELAYED)
    subscriber = shipment_delayed_alert(emails, settings)
    assert await handle_once(db_sessions, subscriber, event.id) is True
    assert await handle_once(db_sessions, subscriber, event.id) is False

    [mail] = await mail_api.mailbox(staff)
    assert mail["subject"] == (
        f"Parcel {shipment.id} (order {made.order.id}) has had no carrier update for 72 h"
    )
    assert "Status: in_transit" in mail["text"]
    assert f"/api/admin/fulfillments/{made.fulfillment.id}" in mail["text"]


async def test_without_a_fulfilment_address_the_inventory_team_is_alerted(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    team = unique_email("inventory")
    settings = mail_api.settings.model_copy(
        update={"fulfillment_alert_email": None, "inventory_alert_email": team}
    )
    async with transaction(db_sessions) as session:
        made = await order_in_parcels(session, status=ShipmentStatus.LABEL_PURCHASED)
    await ShipmentTracking(db_sessions).mark_delayed(made.shipments[0].id, 72, datetime.now(UTC))
    async with db_sessions() as session:
        [event] = await published(session, made.order.id, EventType.SHIPMENT_DELAYED)
    assert await handle_once(db_sessions, shipment_delayed_alert(emails, settings), event.id)
    [mail] = await mail_api.mailbox(team)
    assert made.shipments[0].id in mail["subject"]
