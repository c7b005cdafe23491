"""``POST /api/shipping/webhooks/easypost``: the signature is checked, other events and
strangers' trackers are acknowledged and ignored, an update reaches its parcel's
workflow once however often EasyPost sends it, and Temporal away answers 503 so that
EasyPost tries again."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.problems import TEMPORAL_EXAMPLE
from core.db import create_session_factory, transaction
from core.settings import Settings
from integrations.sandbox.easypost_wire import sign
from models.fulfillment import Shipment, ShipmentStatus
from temporal.queues import TaskQueue
from tests.api.test_openapi_server_errors import assert_is_the_example
from tests.conftest import start_dev_server
from tests.fulfillment_rows import order_in_parcels
from tests.workflows.shipment_standins import BOOK, RECORD, ShipmentStandIns, parcel
from workflows.types.fulfillment import SHIPMENT_WORKFLOW, shipment_workflow_id
from workflows.types.shipments import ShipmentView

URL = "/api/shipping/webhooks/easypost"
# What Temporal's outages say (temporal/client.py, temporal/clients/connection.py).
NO_CONNECTION = re.compile(r"Temporal at \S+ is not reachable: .+")
CALL_FAILED = re.compile(r"\w+ \w+ (cannot be reached|did not answer); try again")


def tracker_event(
    tracker_id: str, *statuses: str, event_id: str | None = None, kind: str = "tracker.updated"
) -> dict[str, Any]:
    """A ``tracker.updated`` Event as EasyPost sends it (the whole tracker inside)."""
    details = [
        {
            "object": "TrackingDetail",
            "message": status.replace("_", " ").capitalize(),
            "status": status,
            "datetime": f"2026-12-01T{8 + i:02d}:00:00Z",
            "source": "USPS",
            "tracking_location": {"city": "Boston", "state": "MA", "country": "US", "zip": None},
        }
        for i, status in enumerate(statuses)
    ]
    return {
        "object": "Event",
        "id": event_id or f"evt_{uuid4().hex}",
        "mode": "test",
        "description": kind,
        "result": {
            "object": "Tracker",
            "id": tracker_id,
            "tracking_code": "9400111899223100000000",
            "status": statuses[-1],
            "shipment_id": None,
            "carrier": "USPS",
            "tracking_details": details,
            "created_at": "2026-12-01T08:00:00Z",
            "updated_at": details[-1]["datetime"],
        },
    }


def signed(settings: Settings, event: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    body = json.dumps(event).encode()
    key = secret or settings.resolved_easypost_webhook_secret
    assert key is not None
    return {
        "content": body,
        "headers": {"Content-Type": "application/json", "X-Hmac-Signature": sign(body, key)},
    }


@pytest.fixture(scope="module")
async def parcels(temporal_client: Client) -> AsyncIterator[ShipmentStandIns]:
    """``ShipmentWorkflow`` with stand-in activities on the dev server the API talks to."""
    async with ShipmentStandIns().running(temporal_client) as running:
        yield running


async def labelled_shipment(engine: AsyncEngine) -> Shipment:
    """A committed parcel with a label (its tracker is ``trk_{id}``)."""
    async with transaction(create_session_factory(engine)) as session:
        made = await order_in_parcels(session, status=ShipmentStatus.LABEL_PURCHASED)
    return made.shipments[0]


async def test_a_bad_or_missing_signature_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    event = tracker_event("trk_x", "in_transit")
    forged = await client.post(URL, **signed(settings, event, secret="not the secret"))
    unsigned = await client.post(URL, json=event)
    for answer in (forged, unsigned):
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "invalid_signature"
    # A body changed after signing.
    good = signed(settings, event)
    good["content"] = good["content"].replace(b"in_transit", b"delivered")
    tampered = await client.post(URL, **good)
    assert tampered.json()["code"] == "invalid_signature"


async def test_other_events_and_strangers_trackers_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    other = tracker_event("trk_x", "in_transit", kind="batch.updated")
    answer = await client.post(URL, **signed(settings, other))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "received": True,
        "shipmentId": None,
        "ignored": "not_a_tracker_update",
    }
    stranger = await client.post(URL, **signed(settings, tracker_event("trk_nobody", "delivered")))
    assert stranger.status_code == 200, stranger.text
    assert stranger.json()["ignored"] == "unknown_tracker"


async def test_an_update_reaches_its_parcel_once_however_often_it_is_sent(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    temporal_client: Client,
    parcels: ShipmentStandIns,
) -> None:
    shipment = await labelled_shipment(engine)
    handle = await temporal_client.start_workflow(
        SHIPMENT_WORKFLOW,
        parcel(shipment.id),
        id=shipment_workflow_id(shipment.id),
        task_queue=str(TaskQueue.ORDERS),
        result_type=ShipmentView,
    )
    await parcels.called(shipment.id, BOOK)
    tracker = f"trk_{shipment.id}"
    moving = signed(settings, tracker_event(tracker, "pre_transit", "in_transit"))
    answers = [await client.post(URL, **moving) for _ in range(3)]  # EasyPost's retries
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"received": True, "shipmentId": shipment.id, "ignored": None}
    await parcels.called(shipment.id, RECORD)
    arrived = signed(settings, tracker_event(tracker, "pre_transit", "in_transit", "delivered"))
    assert (await client.post(URL, **arrived)).status_code == 200
    assert (await handle.result()).status is ShipmentStatus.DELIVERED
    assert parcels.ran(shipment.id) == [BOOK, RECORD, RECORD]
    # The parcel's tracking has ended: a late webhook is acknowledged, and ignored.
    late = await client.post(URL, **signed(settings, tracker_event(tracker, "in_transit")))
    assert late.json() == {
        "received": True,
        "shipmentId": shipment.id,
        "ignored": "no_longer_tracked",
    }


async def test_temporal_away_answers_503_so_easypost_sends_it_again(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    shipment = await labelled_shipment(engine)
    away = await make_client(temporal_address="127.0.0.1:9")
    event = tracker_event(f"trk_{shipment.id}", "in_transit")
    answer = await asyncio.wait_for(away.post(URL, **signed(settings, event)), 30)
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "temporal_unavailable"
    # Try again in a moment, as a database or Redis outage says.
    assert answer.headers["retry-after"] == "1"
    # As the OpenAPI document shows it: Temporal named, not Redis.
    assert_is_the_example(answer, "temporal_unavailable", detail=NO_CONNECTION)


async def test_temporal_silent_answers_503_temporal_unavailable(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    """Temporal's address takes the connection but never answers (a server too busy to,
    a proxy in front of none): no connection to Temporal opens, 503
    ``temporal_unavailable`` as the OpenAPI document's example shows it, for the request
    that tried to connect and for the one that waited for it meanwhile. They answered
    ``dependency_unavailable`` ("the workflow service is unavailable"), which the README
    and the OpenAPI document keep for a call to a workflow that failed, naming it."""
    shipment = await labelled_shipment(engine)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # never accepts, never answers
        silent_at = f"127.0.0.1:{silent.getsockname()[1]}"
        api = await make_client(temporal_address=silent_at)
        event = signed(settings, tracker_event(f"trk_{shipment.id}", "in_transit"))
        answers = await asyncio.wait_for(
            asyncio.gather(api.post(URL, **event), api.post(URL, **event)), 30
        )
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "temporal_unavailable", answer.text
        assert_is_the_example(answer, "temporal_unavailable", detail=NO_CONNECTION)
        assert silent_at in answer.json()["detail"]
        assert answer.headers["retry-after"] == "1"


async def test_temporal_gone_after_connecting_answers_503_naming_the_workflow(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    """The API connected to Temporal, which then went away: the signal to the parcel's
    workflow fails, 503 ``dependency_unavailable`` naming the parcel, as the OpenAPI
    document's Temporal example of the code shows it (its Redis example was the only one,
    on every operation)."""
    shipment = await labelled_shipment(engine)
    tracker = f"trk_{shipment.id}"
    temporal = await start_dev_server()
    try:
        address = temporal.client.service_client.config.target_host
        api = await make_client(temporal_address=address)
        # Connected: the parcel has no workflow on this server, nothing to tell.
        first = await api.post(URL, **signed(settings, tracker_event(tracker, "in_transit")))
        assert first.json()["ignored"] == "no_longer_tracked", first.text
    finally:
        await temporal.shutdown()
    event = tracker_event(tracker, "in_transit", "out_for_delivery")
    answer = await asyncio.wait_for(api.post(URL, **signed(settings, event)), 30)
    assert answer.status_code == 503, answer.text
    assert_is_the_example(answer, TEMPORAL_EXAMPLE, detail=CALL_FAILED)
    assert shipment.id in answer.json()["detail"]
    assert answer.headers["retry-after"] == "1"
