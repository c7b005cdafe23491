"""A label the carrier refuses, fixed by staff on the live stack: an order placed to an
address the EasyPost sandbox cannot verify (zip ``00000``), its parcel's label refused
(the fulfilment goes on hold, the workflow waits), staff correct the address through
``POST /api/admin/shipments/{id}/address`` and the workflow buys the label for it; every
mistake has its code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from core.db import create_session_factory
from integrations.sandbox.easypost_wire import UNVERIFIABLE_ZIP
from models.fulfillment import ShipmentStatus
from models.order_api import ShippingAddressIn
from services.fulfillment.addresses import ShipmentAddresses
from services.workflow_starts import WorkflowStartRepository
from temporal.clients.connection import TemporalConnection
from temporal.clients.shipments import ShipmentWorkflows
from temporal.clients.starts import relay_pending, start_row
from tests.factories import staff_headers
from tests.live import LiveStack
from tests.orders.helpers import ADDRESS, order_body, product, shopper_with_cart, wait_for
from tests.shipping.test_tracking_live import fulfilment_of, http, poll, tracker_of
from workflows.types.fulfillment import shipment_workflow_id
from workflows.types.shipments import BOOK_LABEL_ACTIVITY, ShipmentView

__all__ = ["http"]  # the live API client fixture
CORRECTED = {"street": "12 Beacon St", "city": "Boston", "state": "MA", "zip": "02108"}


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


@dataclass
class RefusedParcel:
    staff: dict[str, str]
    shopper_headers: dict[str, str]
    order_id: str
    fulfillment_id: str
    parcel: str
    view: Callable[[], Awaitable[ShipmentView]]
    admin_view: Callable[[], Awaitable[dict[str, Any]]]


async def refused_parcel(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> RefusedParcel:
    """An order to an address the sandbox cannot verify, its parcel's label refused: the
    parcel's workflow waits for a retry and the fulfilment is on hold."""
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

    async def admin_view() -> dict[str, Any]:
        answer = await http.get(f"/api/admin/fulfillments/{fulfilment['id']}", headers=staff)
        found: dict[str, Any] = answer.json()
        return found

    stuck = await poll(view, lambda v: v.awaiting_retry, "the refused label")
    assert stuck.status is ShipmentStatus.PENDING
    assert stuck.problem is not None
    held = await poll(admin_view, lambda f: f["status"] == "on_hold", "the hold")
    assert "label refused" in (held["holdReason"] or "")
    return RefusedParcel(
        staff, shopper.headers, order_id, fulfilment["id"], parcel, view, admin_view
    )


async def test_staff_correct_a_refused_address_and_the_label_is_bought_for_it(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    refused = await refused_parcel(http, engine, live)
    staff, parcel, view, admin_view = (
        refused.staff,
        refused.parcel,
        refused.view,
        refused.admin_view,
    )
    order_id = refused.order_id

    path = f"/api/admin/shipments/{parcel}/address"
    unknown = await http.post(
        "/api/admin/shipments/shp_nope/address", headers=staff, json=CORRECTED
    )
    assert code(unknown) == (404, "shipment_not_found")
    stateless = await http.post(path, headers=staff, json=CORRECTED | {"state": None})
    assert code(stateless) == (422, "invalid_address")
    nowhere_country = await http.post(path, headers=staff, json=CORRECTED | {"country": "ZZ"})
    assert code(nowhere_country) == (422, "invalid_address")
    customer = await http.post(path, headers=refused.shopper_headers, json=CORRECTED)
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
    mine = await http.get(f"/api/orders/{order_id}", headers=refused.shopper_headers)
    timeline = [entry["message"] for entry in mine.json()["timeline"]]
    assert f"parcel {parcel}: shipping address corrected, label to be tried again" in timeline


async def test_a_correction_whose_retry_was_never_sent_is_relayed(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    """The API process dies after the correction commits, before it tells the parcel's
    workflow: the retry is owed by the committed correction (a ``workflow_starts`` row)
    and the relay sends it; the label is bought for the corrected address. Before, the
    address sat in the database and the workflow waited until staff posted it again."""
    refused = await refused_parcel(http, engine, live)
    sessions = create_session_factory(engine)
    workflows = ShipmentWorkflows(TemporalConnection.of(live.client))
    async with sessions() as session, session.begin():
        # The request's work and its commit, without what runs after the commit.
        await ShipmentAddresses(session, workflows).correct(
            refused.parcel, ShippingAddressIn.model_validate(CORRECTED).model_dump()
        )
    assert (await refused.view()).awaiting_retry  # nobody told it

    await relay_pending(live.client, sessions, older_than=timedelta(0))
    labelled = await poll(
        refused.admin_view,
        lambda f: f["shipments"][0]["status"] == "label_purchased",
        "the label for the corrected address",
    )
    assert labelled["shippingAddress"]["zip"] == "02108"
    async with sessions() as session:
        owed = await WorkflowStartRepository(session).owed(shipment_workflow_id(refused.parcel))
    assert owed is None  # sent once; a later relay run sends nothing more


async def test_a_correction_relayed_again_after_a_lost_answer_books_once(
    http: httpx.AsyncClient, engine: AsyncEngine, live: LiveStack
) -> None:
    """The correction's ``retry_label`` reached the workflow but its answer was lost, so
    the row stayed owed and the relay sent it again. The corrected address was refused
    as well, so the repeat found the parcel waiting for staff: it books nothing (one
    label attempt per correction) and the parcel still waits. Before, the repeat booked
    a third time, with the address the carrier had just refused."""
    refused = await refused_parcel(http, engine, live)
    sessions = create_session_factory(engine)
    workflows = ShipmentWorkflows(TemporalConnection.of(live.client))
    still_nowhere = CORRECTED | {"zip": UNVERIFIABLE_ZIP}
    async with sessions() as session, session.begin():
        _, owed = await ShipmentAddresses(session, workflows).correct(
            refused.parcel, ShippingAddressIn.model_validate(still_nowhere).model_dump()
        )
    handle = live.client.get_workflow_handle(shipment_workflow_id(refused.parcel))

    async def history() -> list[HistoryEvent]:
        return list((await handle.fetch_history()).events)

    def bookings(events: list[HistoryEvent]) -> int:
        return sum(
            e.activity_task_scheduled_event_attributes.activity_type.name == BOOK_LABEL_ACTIVITY
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        )

    def handled_signals(events: list[HistoryEvent]) -> int:
        """Retry signals answered by a workflow task completed after them."""
        signalled = [
            i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and e.workflow_execution_signaled_event_attributes.signal_name == "retry_label"
        ]
        done = [
            i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ]
        return sum(any(d > s for d in done) for s in signalled)

    # Sent, but the sender never heard back: the row is still owed.
    await start_row(live.client, owed)
    await poll(history, lambda events: bookings(events) == 2, "the corrected booking")
    again = await poll(refused.view, lambda v: v.awaiting_retry, "the second refusal")
    assert again.status is ShipmentStatus.PENDING

    await relay_pending(live.client, sessions, older_than=timedelta(0))
    events = await poll(history, lambda events: handled_signals(events) == 2, "the repeat")
    assert bookings(events) == 2
    after = await refused.view()
    assert (after.status, after.awaiting_retry) == (ShipmentStatus.PENDING, True)


async def test_a_signal_owed_to_a_workflow_that_ended_is_dropped(
    engine: AsyncEngine, live: LiveStack
) -> None:
    """A parcel's workflow that ended (cancelled, say) before its owed ``retry_label`` went
    out has nobody to tell: the relay counts the row done rather than trying forever."""
    sessions = create_session_factory(engine)
    gone = f"shp_gone_{uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await ShipmentWorkflows.request_retry_label(session, gone, "corr_gone")
    await relay_pending(live.client, sessions, older_than=timedelta(0))
    async with sessions() as session:
        assert await WorkflowStartRepository(session).owed(shipment_workflow_id(gone)) is None
