"""The SendGrid, HubSpot and EasyPost SDKs' HTTP calls as client spans: with an
exporter, each request an adapter sends inside an activity's span is a child of it
(across ``asyncio.to_thread``), carries its ``traceparent`` to the provider's sandbox on
the live API, whose server span continues the trace; without one, nothing is attached
or imported. Against the sandboxes over HTTP and a real OTLP receiver."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import python_http_client
from requests.adapters import HTTPAdapter

from cli.stack.process import free_port
from core.ids import IdPrefix, new_id
from core.money import Money
from core.settings import Settings
from core.telemetry import ProcessRole, Tracing, tracing_for
from integrations.crm.client import Deal, DealStage
from integrations.crm.factory import build_crm
from integrations.email.factory import build_sender
from integrations.email.sender import EmailProviderUnavailable, OutgoingEmail, SendGridSender
from integrations.shipping.easypost import EasyPostProvider
from integrations.shipping.factory import build_shipping_provider
from tests.factories import unique_email
from tests.integrations.easypost_live import shipment_request
from tests.live import live_api
from tests.otlp_receiver import (
    OtlpReceiver,
    ReceivedSpan,
    flush_exporters,
    otlp_receiver,
    worker_tracing,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
async def live(settings: Settings, receiver: OtlpReceiver) -> AsyncIterator[Settings]:
    """A live API (the sandboxes) exporting to ``receiver``; the adapters are built with
    the worker role's tracing of the same settings."""
    traced = settings.model_copy(
        update={"shop_api_port": free_port(), "otel_exporter_otlp_endpoint": receiver.endpoint}
    )
    async with live_api(traced):
        yield traced
    flush_exporters(traced)


def _email(to: str) -> OutgoingEmail:
    return OutgoingEmail(
        to=to,
        from_="Shopweave <no-reply@shopweave.example>",
        subject="Traced",
        html="<p>traced</p>",
        text="traced",
    )


def _deal() -> Deal:
    return Deal(
        order_id=new_id(IdPrefix.ORDER),
        name="Order traced",
        amount=Money(4599, "USD"),
        stage=DealStage.PLACED,
        close_date=datetime(2026, 12, 3, 8, 30, tzinfo=UTC),
    )


def _calls(spans: list[ReceivedSpan], service: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.attributes.get("peer.service") == service]


async def test_each_provider_call_is_a_client_span_the_sandbox_continues(
    live: Settings, receiver: OtlpReceiver
) -> None:
    tracing = tracing_for(live, ProcessRole.WORKER)
    assert tracing is not None
    sender = build_sender(live, tracing)
    crm = build_crm(live, tracing)
    carrier = build_shipping_provider(live, tracing)
    # Outside any span (a background loop's work): no span, and no trace for the sandbox.
    await sender.send(_email(unique_email("untraced")))
    with tracing.tracer.start_as_current_span("RunActivity:test") as activity:
        await sender.send(_email(unique_email("traced")))
        deal = _deal()
        deal_id = await crm.upsert_deal(deal, None)
        # Sent again (a retried step): the create answers 409, then the deal is updated.
        assert await crm.upsert_deal(deal, None) == deal_id
        shipment = await carrier.create_shipment(shipment_request(new_id(IdPrefix.ORDER)))
        label = await carrier.buy_label(shipment.provider_shipment_id)
        assert label.tracking_code
    flush_exporters(live)

    trace_id = format(activity.get_span_context().trace_id, "032x")
    parent = format(activity.get_span_context().span_id, "016x")
    spans = receiver.received()
    in_trace = [s for s in spans if s.trace_id == trace_id]
    for service, sandbox in (
        ("sendgrid", "/_sandbox/sendgrid/"),
        ("hubspot", "/_sandbox/hubspot/"),
        ("easypost", "/_sandbox/easypost/"),
    ):
        calls = _calls(spans, service)
        assert calls, service
        for call in calls:
            assert (call.trace_id, call.parent_span_id) == (trace_id, parent), call
            assert (call.kind, call.service) == ("SPAN_KIND_CLIENT", "shopweave-worker")
            assert call.name == call.attributes["http.method"]
            assert sandbox in call.attributes["http.url"]
            assert call.attributes["server.address"] == "127.0.0.1"
            assert call.attributes["server.port"] == str(live.shop_api_port)
            status = int(call.attributes["http.status_code"])
            assert call.status == ("STATUS_CODE_ERROR" if status >= 400 else "STATUS_CODE_UNSET")
            # The sandbox's server span, on the API, is the call's child in the trace.
            served = [s for s in in_trace if s.parent_span_id == call.span_id]
            assert len(served) == 1, (call.name, call.attributes["http.url"])
            assert served[0].service == "shopweave-api"
            assert served[0].kind == "SPAN_KIND_SERVER"
            assert served[0].name.startswith(f"{call.name} {sandbox}")

    emails = _calls(spans, "sendgrid")
    assert [(s.name, s.attributes["http.status_code"]) for s in emails] == [("POST", "202")]
    assert emails[0].attributes["http.url"].endswith("/_sandbox/sendgrid/v3/mail/send")
    deals = [
        (s.name, s.attributes["http.status_code"])
        for s in _calls(spans, "hubspot")
        if "/crm/v3/objects/deals" in s.attributes["http.url"]
    ]
    assert deals == [("POST", "201"), ("POST", "409"), ("PATCH", "200")]
    bought = [
        s
        for s in _calls(spans, "easypost")
        if s.attributes["http.url"].endswith(f"/shipments/{shipment.provider_shipment_id}/buy")
    ]
    assert [(s.name, s.attributes["http.status_code"]) for s in bought] == [("POST", "200")]
    # The key stays out of the URLs (it travels in a header).
    key = live.resolved_easypost_api_key
    assert all(key not in s.attributes.get("http.url", "") for s in spans)


async def test_a_call_that_fails_to_connect_is_an_error_span(
    live: Settings, receiver: OtlpReceiver
) -> None:
    tracing = tracing_for(live, ProcessRole.WORKER)
    assert tracing is not None
    nowhere = f"http://127.0.0.1:{free_port()}"
    sender = SendGridSender("SG.test", nowhere, timeout_seconds=2, tracing=tracing)
    with (
        tracing.tracer.start_as_current_span("RunActivity:unreachable") as activity,
        pytest.raises(EmailProviderUnavailable),
    ):
        await sender.send(_email(unique_email("nowhere")))
    flush_exporters(live)
    parent = format(activity.get_span_context().span_id, "016x")
    [call] = [s for s in receiver.received() if s.parent_span_id == parent]
    assert (call.name, call.attributes["peer.service"]) == ("POST", "sendgrid")
    assert call.attributes["http.url"] == f"{nowhere}/v3/mail/send"
    assert "http.status_code" not in call.attributes
    assert call.status == "STATUS_CODE_ERROR"
    assert call.events == ("exception",)


def _hooked(settings: Settings, tracing: Tracing) -> dict[str, bool]:
    """Whether each adapter's SDK transport carries our hook."""
    sender = build_sender(settings, tracing)
    crm = build_crm(settings, tracing)
    pools = [
        api.api_client.rest_client.pool_manager
        for api in (
            crm._contacts,
            crm._contacts_basic,
            crm._contacts_search,
            crm._deals,
            crm._properties,
            crm._associations,
        )
    ]
    carrier = build_shipping_provider(settings, tracing)
    assert isinstance(carrier, EasyPostProvider)
    adapters = carrier._client._requests_session.adapters.values()
    return {
        "sendgrid": type(sender._client.client) is not python_http_client.Client,
        "hubspot": all("urlopen" in vars(pool) for pool in pools),
        "easypost": all(type(adapter) is not HTTPAdapter for adapter in adapters),
    }


def test_only_with_an_exporter_are_the_sdks_transports_hooked(settings: Settings) -> None:
    silent = worker_tracing(None)
    assert not silent.exporting
    assert _hooked(settings, silent) == {"sendgrid": False, "hubspot": False, "easypost": False}
    exporting = worker_tracing(f"http://127.0.0.1:{free_port()}/v1/traces")
    try:
        assert _hooked(settings, exporting) == {"sendgrid": True, "hubspot": True, "easypost": True}
    finally:
        exporting.provider.shutdown()  # its export thread; nothing was recorded


def test_without_an_exporter_no_instrumentation_is_imported() -> None:
    code = (
        "import sys\n"
        "from core.settings import Settings\n"
        "from core.telemetry import ProcessRole, tracing_for\n"
        "from integrations.crm.factory import build_crm\n"
        "from integrations.email.factory import build_sender\n"
        "from integrations.marketing.factory import build_marketing_client\n"
        "from integrations.shipping.factory import build_shipping_provider\n"
        "settings = Settings(otel_traces_exporter='none')\n"
        "tracing = tracing_for(settings, ProcessRole.WORKER)\n"
        "assert tracing is not None and not tracing.exporting\n"
        "build_sender(settings, tracing), build_crm(settings, tracing)\n"
        "build_marketing_client(settings, tracing), build_shipping_provider(settings, tracing)\n"
        "print(sorted(m for m in sys.modules if m == 'core.client_spans'"
        " or m.startswith('opentelemetry.instrumentation')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
