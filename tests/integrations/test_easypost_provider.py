"""The EasyPost adapter (``EasyPostProvider``) through the real SDK against the EasyPost
sandbox over HTTP: shipments, the cheapest label bought once however often it is asked
for (a lost answer included), refunds, trackers, webhook signatures, and errors sorted
into retryable and not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from easypost.easypost_client import EasyPostClient
from easypost.errors.api.api_error import ApiError
from pydantic import SecretStr

from core.errors import WebhookSecretMissing
from core.ids import IdPrefix, new_id
from core.settings import SANDBOX_EASYPOST_WEBHOOK_SECRET, Settings
from integrations.sandbox.easypost_wire import sign
from integrations.shipping.factory import build_shipping_provider, ship_from_address
from integrations.shipping.provider import (
    CarrierStatus,
    LabelInUse,
    ShippingRejected,
    ShippingUnavailable,
    WebhookSignatureInvalid,
)
from tests.integrations.easypost_live import (
    AUTH,
    EasyPostStack,
    easypost_stack,
    shipment_request,
)
from workflows.types.returns import LABEL_IN_USE


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[EasyPostStack]:
    async with easypost_stack(settings) as live:
        yield live


@pytest.fixture
async def sandbox(stack: EasyPostStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.sandbox_url, headers=AUTH) as http:
        yield http
        await http.delete("/faults")


def _reference() -> str:
    return new_id(IdPrefix.ORDER).replace("ord_", "shpm_")


async def test_create_then_buy_the_cheapest_rate_once(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    provider = build_shipping_provider(stack.settings)
    reference = _reference()
    created = await provider.create_shipment(shipment_request(reference))
    assert created.provider_shipment_id.startswith("shp_")
    assert len(created.rate_ids) == 3

    held = (await sandbox.get("/shipments", params={"reference": reference})).json()
    assert [s["id"] for s in held] == [created.provider_shipment_id]
    shipment = held[0]
    assert shipment["is_return"] is False
    assert shipment["to_address"]["street2"] == "Floor 5"
    assert shipment["parcel"]["weight"] == 12.0
    cheapest = min(shipment["rates"], key=lambda r: Decimal(r["rate"]))

    label = await provider.buy_label(created.provider_shipment_id)
    assert (label.carrier, label.service) == (cheapest["carrier"], cheapest["service"])
    assert label.rate_amount == int(Decimal(cheapest["rate"]) * 100)
    assert label.currency == "USD"
    assert label.tracker_id is not None
    assert label.tracker_id.startswith("trk_")
    assert label.tracking_code
    assert label.tracking_url is not None
    async with httpx.AsyncClient() as web:
        assert label.tracking_code in (await web.get(label.tracking_url)).text
        assert label.tracking_code in (await web.get(label.label_url)).text

    # Asked again (a retried activity): the same label, nothing bought twice.
    assert await provider.buy_label(created.provider_shipment_id) == label
    trackers = (await sandbox.get("/trackers")).json()
    assert sum(t["shipment_id"] == created.provider_shipment_id for t in trackers) == 1

    tracker = await provider.get_tracker(label.tracker_id)
    assert tracker.status is CarrierStatus.PRE_TRANSIT
    assert tracker.tracking_code == label.tracking_code
    assert tracker.shipment_id == created.provider_shipment_id
    assert [d.status for d in tracker.details] == [CarrierStatus.PRE_TRANSIT]
    assert tracker.details[0].location == "Boston, MA, 02118, US"


async def test_a_second_buy_is_refused_as_easypost_does(stack: EasyPostStack) -> None:
    provider = stack.provider()
    created = await provider.create_shipment(shipment_request(_reference()))
    await provider.buy_label(created.provider_shipment_id)
    client = EasyPostClient(
        "EZTK_test", api_base=stack.settings.resolved_easypost_base_url, timeout=5
    )
    with pytest.raises(ApiError) as refused:
        # The SDK is synchronous, and the API runs in this event loop: call it in a thread.
        await asyncio.to_thread(
            client.shipment.buy, created.provider_shipment_id, rate={"id": created.rate_ids[0]}
        )
    assert refused.value.http_status == 422
    assert refused.value.code == "SHIPMENT.POSTAGE.EXISTS"


async def test_a_lost_answer_to_the_buy_still_buys_one_label(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    provider = stack.provider()
    created = await provider.create_shipment(shipment_request(_reference()))
    await sandbox.put("/faults", json={"lostAnswerRate": 1})
    with pytest.raises(ShippingUnavailable):
        await provider.buy_label(created.provider_shipment_id)
    await sandbox.delete("/faults")

    label = await provider.buy_label(created.provider_shipment_id)
    held = (await sandbox.get(f"/v2/shipments/{created.provider_shipment_id}")).json()
    assert held["tracking_code"] == label.tracking_code
    trackers = (await sandbox.get("/trackers")).json()
    assert sum(t["shipment_id"] == created.provider_shipment_id for t in trackers) == 1


async def test_refunds_are_idempotent_and_void_the_tracker(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    provider = stack.provider()
    created = await provider.create_shipment(shipment_request(_reference()))
    await provider.refund_label(created.provider_shipment_id)  # nothing bought: nothing to do
    label = await provider.buy_label(created.provider_shipment_id)
    assert label.tracker_id is not None

    await provider.refund_label(created.provider_shipment_id)
    await provider.refund_label(created.provider_shipment_id)  # a retried compensation
    shipment = (await sandbox.get(f"/v2/shipments/{created.provider_shipment_id}")).json()
    assert shipment["refund_status"] == "submitted"
    assert (await provider.get_tracker(label.tracker_id)).status is CarrierStatus.CANCELLED
    with pytest.raises(ShippingRejected, match="voided"):
        await provider.buy_label(created.provider_shipment_id)


async def test_a_label_the_carrier_has_cannot_be_voided(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    provider = stack.provider()
    created = await provider.create_shipment(shipment_request(_reference()))
    label = await provider.buy_label(created.provider_shipment_id)
    moved = await sandbox.post(f"/trackers/{label.tracker_id}/advance")
    assert moved.status_code == 200, moved.text
    with pytest.raises(LabelInUse, match="already used"):
        await provider.refund_label(created.provider_shipment_id)
    assert LabelInUse.code == LABEL_IN_USE  # the code ReturnWorkflow waits on


async def test_a_tracker_moved_at_past_times_keeps_them(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    """Seeding a past parcel: the label's entry and each update carry the carrier's
    times, which only go forward and never past now."""
    provider = stack.provider()
    created = await provider.create_shipment(shipment_request(_reference()))
    label = await provider.buy_label(created.provider_shipment_id)
    assert label.tracker_id is not None
    advance = f"/trackers/{label.tracker_id}/advance"
    now = datetime.now(UTC).replace(microsecond=0)
    labelled, moved = now - timedelta(days=20), now - timedelta(days=19)
    future = await sandbox.post(
        advance, json={"occurredAt": (now + timedelta(hours=1)).isoformat()}
    )
    assert future.status_code == 409, future.text
    assert future.json()["code"] == "tracker_cannot_move"
    naive = await sandbox.post(advance, json={"occurredAt": "2026-11-01T10:00:00"})
    assert naive.status_code == 422, naive.text
    first = await sandbox.post(
        advance, json={"occurredAt": moved.isoformat(), "labelAt": labelled.isoformat()}
    )
    assert first.status_code == 200, first.text

    tracker = await provider.get_tracker(label.tracker_id)
    assert [(d.status, d.occurred_at) for d in tracker.details] == [
        (CarrierStatus.PRE_TRANSIT, labelled),
        (CarrierStatus.IN_TRANSIT, moved),
    ]
    assert tracker.updated_at == moved
    backwards = await sandbox.post(
        advance, json={"occurredAt": (moved - timedelta(minutes=1)).isoformat()}
    )
    assert backwards.status_code == 409, backwards.text
    redated = await sandbox.post(
        advance, json={"occurredAt": now.isoformat(), "labelAt": labelled.isoformat()}
    )
    assert redated.status_code == 409, redated.text  # the label's date is told already
    assert (await provider.get_tracker(label.tracker_id)).status is CarrierStatus.IN_TRANSIT


async def test_refusals_retrying_cannot_cure(stack: EasyPostStack) -> None:
    provider = stack.provider()
    with pytest.raises(ShippingRejected, match=r"ADDRESS\.VERIFY\.FAILURE"):
        await provider.create_shipment(shipment_request(_reference(), zip_code="00000"))
    with pytest.raises(ShippingRejected, match="no rate"):
        await provider.create_shipment(shipment_request(_reference(), zip_code="99999"))
    with pytest.raises(ShippingRejected, match="404"):
        await provider.buy_label("shp_doesnotexist")
    with pytest.raises(ShippingRejected, match="404"):
        await provider.get_tracker("trk_doesnotexist")
    blank = shipment_request(_reference())
    blank.to_address.city = " "
    with pytest.raises(ShippingRejected, match=r"to_address\.city"):
        await provider.create_shipment(blank)


async def test_return_shipments_are_marked_as_returns(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    reference = _reference()
    request = shipment_request(reference, is_return=True)
    request = request.model_copy(
        update={"to_address": ship_from_address(stack.settings), "from_address": request.to_address}
    )
    await stack.provider().create_shipment(request)
    (held,) = (await sandbox.get("/shipments", params={"reference": reference})).json()
    assert held["is_return"] is True
    assert held["to_address"]["city"] == stack.settings.ship_from_city


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        ({"status": 503}, ShippingUnavailable),
        ({"status": 500}, ShippingUnavailable),
        ({"status": 429}, ShippingUnavailable),
        ({"status": 422}, ShippingRejected),
        ({"status": 400}, ShippingRejected),
        ({"failureRate": 1}, ShippingUnavailable),
    ],
)
async def test_faults_become_our_errors(
    stack: EasyPostStack,
    sandbox: httpx.AsyncClient,
    faults: dict[str, int],
    error: type[Exception],
) -> None:
    await sandbox.put("/faults", json=faults)
    with pytest.raises(error):
        await stack.provider().create_shipment(shipment_request(_reference()))


async def test_a_slow_sandbox_is_a_timeout(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    await sandbox.put("/faults", json={"latencyMs": 1500})
    with pytest.raises(ShippingUnavailable, match="timed out"):
        await stack.provider(easypost_timeout_seconds=0.3).create_shipment(
            shipment_request(_reference())
        )


async def test_an_unreachable_easypost_is_unavailable(stack: EasyPostStack) -> None:
    provider = stack.provider(easypost_base_url="http://127.0.0.1:9/v2")
    with pytest.raises(ShippingUnavailable):
        await provider.get_tracker("trk_x")


async def test_the_sandbox_wants_an_api_key(stack: EasyPostStack) -> None:
    async with httpx.AsyncClient(base_url=stack.sandbox_url) as http:
        refused = await http.get("/v2/trackers/trk_x")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "APIKEY.REQUIRED"
        basic = await http.get("/v2/trackers/trk_x", auth=("EZTK_test", ""))
        assert basic.status_code == 404
        assert basic.json()["error"]["code"] == "NOT_FOUND"


def _event(description: str) -> bytes:
    return json.dumps(
        {
            "object": "Event",
            "id": "evt_1",
            "description": description,
            "result": {
                "id": "trk_1",
                "object": "Tracker",
                "tracking_code": "9400100000000000000000",
                "status": "in_transit",
                "shipment_id": "shp_1",
                "tracking_details": [
                    {
                        "status": "in_transit",
                        "message": "Arrived",
                        "datetime": "2026-12-03T10:00:00Z",
                        "tracking_location": {"city": "Boston", "state": "MA"},
                    }
                ],
                "created_at": "2026-12-03T09:00:00Z",
                "updated_at": "2026-12-03T10:00:00Z",
            },
        }
    ).encode()


def test_webhook_signatures(settings: Settings) -> None:
    provider = build_shipping_provider(settings)
    body = _event("tracker.updated")
    signed = {"x-hmac-signature": sign(body, SANDBOX_EASYPOST_WEBHOOK_SECRET)}
    hook = provider.verify_webhook(body, signed)
    assert hook is not None
    assert hook.event_id == "evt_1"
    assert hook.tracker.status is CarrierStatus.IN_TRANSIT
    assert hook.tracker.details[0].location == "Boston, MA"

    with pytest.raises(WebhookSignatureInvalid):
        provider.verify_webhook(body, {})
    with pytest.raises(WebhookSignatureInvalid):
        provider.verify_webhook(body, {"X-Hmac-Signature": sign(body, "another secret")})
    with pytest.raises(WebhookSignatureInvalid):
        provider.verify_webhook(body + b" ", signed)

    other = _event("batch.updated")
    assert (
        provider.verify_webhook(
            other, {"X-Hmac-Signature": sign(other, SANDBOX_EASYPOST_WEBHOOK_SECRET)}
        )
        is None
    )


def test_production_without_a_secret_refuses_every_webhook(settings: Settings) -> None:
    production = settings.model_copy(update={"shop_env": "production"})
    assert production.resolved_easypost_webhook_secret is None
    body = _event("tracker.updated")
    # The configuration's fault, said as such (503): not "carries no X-Hmac-Signature".
    with pytest.raises(WebhookSecretMissing):
        build_shipping_provider(production).verify_webhook(
            body, {"X-Hmac-Signature": sign(body, SANDBOX_EASYPOST_WEBHOOK_SECRET)}
        )


def test_a_real_easypost_key_without_a_webhook_secret_refuses_the_sandbox_s_signature(
    settings: Settings,
) -> None:
    """The sandbox's secret is public (in ``core/settings/providers.py``): with
    EASYPOST_API_KEY set the carrier is the real one, and a webhook signed with that
    secret is anyone's, even outside production. Only EASYPOST_WEBHOOK_SECRET verifies
    then."""
    real = settings.model_copy(update={"easypost_api_key": SecretStr("EZAK_real")})
    assert real.sandboxes_enabled
    assert real.resolved_easypost_webhook_secret is None
    body = _event("tracker.updated")
    with pytest.raises(WebhookSecretMissing) as missing:
        build_shipping_provider(real).verify_webhook(
            body, {"X-Hmac-Signature": sign(body, SANDBOX_EASYPOST_WEBHOOK_SECRET)}
        )
    assert (missing.value.status, missing.value.code) == (503, "webhook_secret_missing")
    configured = real.model_copy(update={"easypost_webhook_secret": SecretStr("whsec_ep")})
    hook = build_shipping_provider(configured).verify_webhook(
        body, {"X-Hmac-Signature": sign(body, "whsec_ep")}
    )
    assert hook is not None
    assert hook.event_id == "evt_1"


def test_a_signature_that_is_not_ascii_is_refused_not_a_crash(settings: Settings) -> None:
    """The SDK's constant-time comparison raises TypeError on non-ASCII text: a forged
    header of that kind is a 400 ``invalid_signature`` like any other forgery."""
    body = _event("tracker.updated")
    with pytest.raises(WebhookSignatureInvalid):
        build_shipping_provider(settings).verify_webhook(
            body, {"X-Hmac-Signature": "hmac-sha256-hex=\xe9t\xe9"}
        )
