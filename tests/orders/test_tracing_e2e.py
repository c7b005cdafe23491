"""One trace per order: the client's request, the API's Temporal start, and the order
workflow and its activities on a worker, all exported to a real OTLP/HTTP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.telemetry import ProcessRole
from temporal.client import connect
from tests.live import LiveStack, live_stack
from tests.orders.helpers import eventually, place, product, shopper_with_cart, wait_for
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, flush_exporters, otlp_receiver

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
async def live(settings: Settings, receiver: OtlpReceiver) -> AsyncIterator[LiveStack]:
    """The live API and workers, both exporting; the workers on a client of their own,
    connected as a worker process connects (``connect``: the tracing interceptor)."""
    traced = settings.model_copy(update={"otel_exporter_otlp_endpoint": receiver.endpoint})
    client = await connect(traced, role=ProcessRole.WORKER)
    async with live_stack(traced, client) as running:
        yield running
    # What the stack's stopping recorded, sent while the receiver still listens (else the
    # exporter retries against a closed port when the test process exits).
    flush_exporters(traced)


async def test_an_order_is_one_trace_from_the_request_to_its_activities(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, receiver: OtlpReceiver
) -> None:
    item = await product(http, staff)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, traceparent=f"00-{TRACE}-{PARENT}-01")
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order

    def in_trace() -> list[ReceivedSpan]:
        return [s for s in receiver.received() if s.trace_id == TRACE]

    async def activities_arrived() -> bool:
        flush_exporters(live.settings)
        names = {s.name for s in in_trace()}
        return "RunWorkflow:OrderWorkflow" in names and any(
            name.startswith("RunActivity:") for name in names
        )

    await eventually(activities_arrived, within=15)
    spans = in_trace()
    request = next(s for s in spans if s.name == "POST /api/orders")
    assert (request.service, request.parent_span_id) == ("shopweave-api", PARENT)
    start = next(s for s in spans if s.name == "StartWorkflow:OrderWorkflow")
    assert (start.service, start.parent_span_id) == ("shopweave-api", request.span_id)
    assert start.attributes["temporalWorkflowID"] == f"order-{placed['id']}"
    run = next(s for s in spans if s.name == "RunWorkflow:OrderWorkflow")
    assert (run.service, run.parent_span_id) == ("shopweave-worker", start.span_id)
    activities = [s for s in spans if s.name.startswith("RunActivity:")]
    assert {s.service for s in activities} == {"shopweave-worker"}
    # The order's steps, and later the deliveries of the events they wrote (their
    # batches' activities, ``events-batch-…``) and the workflows those start.
    steps = [s for s in activities if s.attributes["temporalWorkflowID"] == f"order-{placed['id']}"]
    assert len(steps) >= 3, sorted(s.name for s in spans)


async def order_placed_in(
    trace_id: str, http: httpx.AsyncClient, staff: dict[str, str]
) -> dict[str, Any]:
    """A shopper's order placed with a ``traceparent`` in ``trace_id``, once queued."""
    item = await product(http, staff)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, traceparent=f"00-{trace_id}-{PARENT}-01")
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    return order


async def test_the_events_an_order_writes_are_delivered_in_its_trace(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, receiver: OtlpReceiver
) -> None:
    trace_id = "5c1e0ff2a4b14e0c9d3b7a8f6e2d1c0b"
    placed = await order_placed_in(trace_id, http, staff)

    def in_trace() -> list[ReceivedSpan]:
        return [s for s in receiver.received() if s.trace_id == trace_id]

    async def fulfilment_started() -> bool:
        # The delivery's span ends (and is exported) after the workflow it started runs.
        flush_exporters(live.settings)
        names = {s.name for s in in_trace()}
        return {
            "deliver fulfillment.order_ready to fulfillment_starter",
            "StartWorkflow:FulfillmentWorkflow",
            "RunWorkflow:FulfillmentWorkflow",
            "RunWorkflow:EventBatchWorkflow",
        } <= names

    await eventually(fulfilment_started, within=20)
    spans = in_trace()
    by_id = {s.span_id: s for s in spans}
    deliveries = [s for s in spans if s.name.startswith("deliver ")]
    # Every delivery is a child of the activity that wrote its event, in the order's trace.
    created = [s for s in deliveries if s.attributes["shop.event.type"] == "order.created"]
    assert created, sorted(s.name for s in spans)
    for delivery in deliveries:
        assert delivery.service == "shopweave-worker"
        writer = by_id[delivery.parent_span_id]
        assert writer.name.startswith("RunActivity:"), (delivery.name, writer.name)
        assert writer.attributes["temporalWorkflowID"] == f"order-{placed['id']}"
    # A workflow a handler starts (the fulfilment starter's) joins the trace under it.
    ready = next(s for s in deliveries if s.name.endswith("to fulfillment_starter"))
    assert ready.attributes["shop.event.type"] == "fulfillment.order_ready"
    start = next(s for s in spans if s.name == "StartWorkflow:FulfillmentWorkflow")
    assert start.parent_span_id == ready.span_id
    run = next(s for s in spans if s.name == "RunWorkflow:FulfillmentWorkflow")
    assert run.parent_span_id == start.span_id
    # The relay's batches of these events: their starts are in the trace too (a batch
    # with events of several traces would be a root linked to each).
    relayed = [s for s in spans if s.name == "relay EventBatchWorkflow"]
    assert relayed
    batches = {s.attributes["temporalWorkflowID"] for s in relayed}
    runs = [s for s in spans if s.name == "RunWorkflow:EventBatchWorkflow"]
    assert {s.attributes["temporalWorkflowID"] for s in runs} <= batches
    assert runs


async def test_the_providers_calls_for_an_order_are_client_spans_in_its_trace(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, receiver: OtlpReceiver
) -> None:
    trace_id = "7d2c4e6f8a0b1c3d5e7f9a1b3c5d7e9f"
    await order_placed_in(trace_id, http, staff)

    def in_trace() -> list[ReceivedSpan]:
        return [s for s in receiver.received() if s.trace_id == trace_id]

    def calls_under(spans: list[ReceivedSpan], parent: str, service: str) -> list[ReceivedSpan]:
        ids = {s.span_id for s in spans if s.name == parent}
        return [
            s
            for s in spans
            if s.parent_span_id in ids and s.attributes.get("peer.service") == service
        ]

    async def calls_arrived() -> bool:
        flush_exporters(live.settings)
        spans = in_trace()
        return bool(
            calls_under(spans, "RunActivity:email.send", "sendgrid")
            and calls_under(spans, "deliver order.created to crm", "hubspot")
        )

    await eventually(calls_arrived, within=20)
    spans = in_trace()
    # The confirmation email: the activity's POST (one unless the step was retried),
    # which SendGrid's sandbox serves in the same trace.
    emails = calls_under(spans, "RunActivity:email.send", "sendgrid")
    sent = [s for s in emails if s.attributes["http.url"].endswith("/v3/mail/send")]
    assert ("POST", "202") in [(s.name, s.attributes["http.status_code"]) for s in sent]
    for email in emails:
        assert (email.kind, email.service) == ("SPAN_KIND_CLIENT", "shopweave-worker")
        served = [s for s in spans if s.parent_span_id == email.span_id]
        assert [(s.service, s.kind) for s in served] == [("shopweave-api", "SPAN_KIND_SERVER")]
    # The CRM deal: made by the order.created delivery, whose span its calls are under.
    deals = [
        s
        for s in calls_under(spans, "deliver order.created to crm", "hubspot")
        if "/crm/v3/objects/deals" in s.attributes["http.url"]
    ]
    # Created once (a redelivery would meet a 409 and update it).
    assert ("POST", "201") in [(s.name, s.attributes["http.status_code"]) for s in deals], deals
    assert all(any(c.parent_span_id == s.span_id for c in spans) for s in deals)
