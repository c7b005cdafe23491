"""The HubSpot adapter (``HubSpotCrm``) through the real SDK against the HubSpot sandbox
over HTTP: contacts upserted by email, one deal per order however often it is sent (a
lost answer included), stage changes, GDPR erasure, and errors sorted into retryable and
not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cli.stack.process import free_port
from core.ids import IdPrefix, new_id
from core.money import Money
from core.settings import Settings
from integrations.crm.client import Contact, CrmRejected, CrmUnavailable, Deal, DealStage
from integrations.crm.hubspot import ORDER_ID_PROPERTY, HubSpotCrm, deal_properties
from tests.factories import unique_email
from tests.live import live_api
from tests.stack import production_settings

PLACED_AT = datetime(2026, 12, 3, 8, 30, 15, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    live = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(live) as base:
        yield live, base


@pytest.fixture
async def sandbox(api: tuple[Settings, str]) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the sandbox (its staff views, fault switches and wire format)."""
    _, base = api
    async with httpx.AsyncClient(base_url=f"{base}/_sandbox/hubspot") as http:
        yield http
        await http.delete("/faults")


@pytest.fixture
def crm(api: tuple[Settings, str]) -> HubSpotCrm:
    live, _ = api
    return HubSpotCrm.from_settings(live)


def _contact(user_id: str | None = None, email: str | None = None) -> Contact:
    return Contact(
        email=email or unique_email("crm"),
        first_name="Ada",
        last_name="Lovelace",
        user_id=user_id or new_id(IdPrefix.USER),
    )


def _deal(order_id: str | None = None, amount: int = 4599) -> Deal:
    return Deal(
        order_id=order_id or new_id(IdPrefix.ORDER),
        name="Order test",
        amount=Money(amount, "USD"),
        stage=DealStage.PLACED,
        close_date=PLACED_AT,
    )


async def _held(sandbox: httpx.AsyncClient, kind: str, **params: str) -> list[dict[str, Any]]:
    response = await sandbox.get(f"/{kind}", params=params)
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()
    return records


AUTH = {"Authorization": "Bearer pat-test"}
SHOWN = (
    "email",
    "firstname",
    "lastname",
    "shopweave_user_id",
    "amount",
    "deal_currency_code",
    "pipeline",
    "dealstage",
    "closedate",
)


def _subset(properties: dict[str, Any]) -> dict[str, Any]:
    """The properties these tests look at, of those the record has."""
    return {k: v for k, v in properties.items() if k in SHOWN}


async def test_a_contact_upserted_twice_is_one_contact(
    crm: HubSpotCrm, sandbox: httpx.AsyncClient
) -> None:
    contact = _contact()
    first = await crm.upsert_contact(contact)
    renamed = Contact(
        email=contact.email.upper(), first_name="Augusta", last_name="King", user_id=contact.user_id
    )
    second = await crm.upsert_contact(renamed)
    assert second == first
    [held] = await _held(sandbox, "contacts", email=contact.email)
    assert held["id"] == first
    assert _subset(held["properties"]) == {
        "email": contact.email,
        "firstname": "Augusta",
        "lastname": "King",
        "shopweave_user_id": contact.user_id,
    }


async def test_one_deal_per_order_even_when_the_first_answer_was_lost(
    crm: HubSpotCrm, sandbox: httpx.AsyncClient
) -> None:
    contact = _contact()
    contact_id = await crm.upsert_contact(contact)
    deal = _deal(amount=123456)
    renamed = Deal(
        order_id=deal.order_id,
        name="Order test (renamed)",
        amount=deal.amount,
        stage=deal.stage,
        close_date=deal.close_date,
    )
    # The first create reached HubSpot but its answer never came back: made directly.
    lost = await sandbox.post(
        "/crm/v3/objects/deals",
        headers=AUTH,
        json={"properties": deal_properties(deal, "default", "contractsent")},
    )
    assert lost.json()["properties"]["dealname"] == "Order test"
    assert lost.status_code == 201, lost.text
    retried = await crm.upsert_deal(renamed, contact_id)
    again = await crm.upsert_deal(renamed, contact_id)
    assert retried == again == lost.json()["id"]
    [held] = await _held(sandbox, "deals", orderId=deal.order_id)
    assert held["id"] == retried
    assert held["properties"]["dealname"] == "Order test (renamed)"  # the retry updated it
    assert _subset(held["properties"]) == {
        "amount": "1234.56",
        "deal_currency_code": "USD",
        "pipeline": "default",
        "dealstage": "contractsent",
        "closedate": "2026-12-03T08:30:15.250Z",
    }
    # The retry associated the deal with its contact (both ways, once).
    assert held["associations"] == {"contacts": [contact_id]}
    [held_contact] = await _held(sandbox, "contacts", email=contact.email)
    assert held_contact["associations"] == {"deals": [retried]}


async def test_a_deal_moves_through_its_stages_and_a_replay_does_not_reopen_it(
    crm: HubSpotCrm, sandbox: httpx.AsyncClient
) -> None:
    deal = _deal()
    deal_id = await crm.upsert_deal(deal, None)
    won_at = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    assert await crm.set_deal_stage(deal.order_id, DealStage.WON, won_at) is True
    assert await crm.upsert_deal(deal, None) == deal_id  # order.created replayed
    [held] = await _held(sandbox, "deals", orderId=deal.order_id)
    assert held["properties"]["dealstage"] == "closedwon"
    assert held["properties"]["closedate"] == "2026-12-04T10:00:00.000Z"
    assert await crm.set_deal_stage(deal.order_id, DealStage.LOST, won_at) is True
    [held] = await _held(sandbox, "deals", orderId=deal.order_id)
    assert held["properties"]["dealstage"] == "closedlost"
    # An order that never had a deal (cancelled before it was confirmed).
    assert await crm.set_deal_stage(new_id(IdPrefix.ORDER), DealStage.LOST, won_at) is False


async def test_forgetting_a_customer_erases_every_contact_of_theirs(
    crm: HubSpotCrm, sandbox: httpx.AsyncClient
) -> None:
    user_id = new_id(IdPrefix.USER)
    old = await crm.upsert_contact(_contact(user_id))
    new = await crm.upsert_contact(_contact(user_id))  # the customer changed their email
    someone_else = _contact()
    other = await crm.upsert_contact(someone_else)
    deal = _deal()
    await crm.upsert_deal(deal, new)
    assert {c["id"] for c in await _held(sandbox, "contacts", userId=user_id)} == {old, new}
    assert await crm.forget_contacts(user_id) == 2
    assert await _held(sandbox, "contacts", userId=user_id) == []
    [held] = await _held(sandbox, "deals", orderId=deal.order_id)
    assert held["associations"] == {"contacts": []}
    assert await crm.forget_contacts(user_id) == 0  # a repeat erases nothing more
    [kept] = await _held(sandbox, "contacts", userId=someone_else.user_id)
    assert kept["id"] == other


async def test_provider_failures_are_retryable_and_refusals_are_not(
    crm: HubSpotCrm, sandbox: httpx.AsyncClient
) -> None:
    await crm.upsert_contact(_contact())  # our properties exist
    for faults in ({"failureRate": 1.0}, {"status": 503}, {"status": 429}):
        assert (await sandbox.put("/faults", json=faults)).status_code == 204
        with pytest.raises(CrmUnavailable) as unavailable:
            await crm.upsert_deal(_deal(), None)
        assert unavailable.value.retryable is True
    await sandbox.put("/faults", json={"status": 400})
    with pytest.raises(CrmRejected) as rejected:
        await crm.upsert_contact(_contact())
    assert rejected.value.retryable is False
    assert "VALIDATION_ERROR" in rejected.value.detail
    await sandbox.delete("/faults")
    assert await crm.upsert_contact(_contact())


async def test_an_invalid_stage_is_refused_not_retried(
    api: tuple[Settings, str], sandbox: httpx.AsyncClient
) -> None:
    live, _ = api
    crm = HubSpotCrm.from_settings(live.model_copy(update={"hubspot_stage_placed": "shipped"}))
    deal = _deal()
    with pytest.raises(CrmRejected) as rejected:
        await crm.upsert_deal(deal, None)
    assert "INVALID_OPTION" in rejected.value.detail
    assert await _held(sandbox, "deals", orderId=deal.order_id) == []


async def test_a_slow_hubspot_is_given_up_on_and_retryable(
    api: tuple[Settings, str], sandbox: httpx.AsyncClient
) -> None:
    live, _ = api
    crm = HubSpotCrm.from_settings(live.model_copy(update={"hubspot_timeout_seconds": 0.3}))
    await sandbox.put("/faults", json={"latencyMs": 1500})
    with pytest.raises(CrmUnavailable, match="unreachable"):
        await crm.upsert_contact(_contact())


async def test_an_unreachable_hubspot_is_retryable(settings: Settings) -> None:
    crm = HubSpotCrm.from_settings(
        settings.model_copy(update={"hubspot_base_url": f"http://127.0.0.1:{free_port()}"})
    )
    with pytest.raises(CrmUnavailable):
        await crm.upsert_contact(_contact())


def test_the_factory_picks_real_hubspot_with_a_token(settings: Settings) -> None:
    assert settings.resolved_hubspot_base_url == f"{settings.api_base_url}/_sandbox/hubspot"
    real = Settings.model_validate(settings.model_dump() | {"hubspot_access_token": "pat-na1-x"})
    assert real.crm_uses_sandbox is False
    assert real.resolved_hubspot_base_url == "https://api.hubapi.com"


# --- the sandbox's wire format, raw ------------------------------------------------------


def _is_hubspot_error(body: dict[str, Any], category: str) -> None:
    assert body["status"] == "error"
    assert body["category"] == category
    assert body["message"]
    assert body["correlationId"]


async def test_the_sandbox_requires_a_bearer_token(sandbox: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        response = await sandbox.post(
            "/crm/v3/objects/contacts/search", headers=headers, json={"filterGroups": []}
        )
        assert response.status_code == 401
        _is_hubspot_error(response.json(), "INVALID_AUTHENTICATION")


async def test_the_sandbox_speaks_hubspots_wire_format(
    crm: HubSpotCrm, sandbox: httpx.AsyncClient
) -> None:
    await crm.upsert_contact(_contact())  # our properties exist
    email = unique_email("wire")
    upsert = {"inputs": [{"id": email, "idProperty": "email", "properties": {"firstname": "A"}}]}
    first = await sandbox.post("/crm/v3/objects/contacts/batch/upsert", headers=AUTH, json=upsert)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt"} <= body.keys()
    [created] = body["results"]
    assert created["new"] is True
    assert created["properties"]["email"] == email
    assert created["properties"]["hs_object_id"] == created["id"]
    second = await sandbox.post("/crm/v3/objects/contacts/batch/upsert", headers=AUTH, json=upsert)
    assert (second.json()["results"][0]["id"], second.json()["results"][0]["new"]) == (
        created["id"],
        False,
    )

    duplicate = await sandbox.post(
        "/crm/v3/objects/contacts", headers=AUTH, json={"properties": {"email": email}}
    )
    assert duplicate.status_code == 409
    _is_hubspot_error(duplicate.json(), "CONFLICT")
    assert duplicate.json()["message"] == f"Contact already exists. Existing ID: {created['id']}"

    order_id = new_id(IdPrefix.ORDER)
    deal = {"properties": {"dealname": "x", ORDER_ID_PROPERTY: order_id}}
    made = await sandbox.post("/crm/v3/objects/deals", headers=AUTH, json=deal)
    assert made.status_code == 201
    again = await sandbox.post("/crm/v3/objects/deals", headers=AUTH, json=deal)
    assert again.status_code == 409
    _is_hubspot_error(again.json(), "CONFLICT")
    assert again.json()["message"].endswith(f"Existing ID: {made.json()['id']}")
    by_order = await sandbox.get(
        f"/crm/v3/objects/deals/{order_id}",
        headers=AUTH,
        params={"idProperty": ORDER_ID_PROPERTY},
    )
    assert by_order.json()["id"] == made.json()["id"]

    unknown = await sandbox.post(
        "/crm/v3/objects/deals", headers=AUTH, json={"properties": {"colour": "red"}}
    )
    assert unknown.status_code == 400
    _is_hubspot_error(unknown.json(), "VALIDATION_ERROR")
    assert unknown.json()["message"].startswith("Property values were not valid")
    assert unknown.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"

    missing = await sandbox.patch(
        "/crm/v3/objects/deals/nothing",
        headers=AUTH,
        params={"idProperty": ORDER_ID_PROPERTY},
        json={"properties": {"dealstage": "closedwon"}},
    )
    assert missing.status_code == 404
    _is_hubspot_error(missing.json(), "OBJECT_NOT_FOUND")

    for shapeless in ({"inputs": ["x"]}, {"inputs": "x"}, [1]):
        bad = await sandbox.post(
            "/crm/v3/objects/contacts/batch/upsert", headers=AUTH, json=shapeless
        )
        assert bad.status_code == 400, bad.text
        _is_hubspot_error(bad.json(), "VALIDATION_ERROR")

    taken = await sandbox.post(
        "/crm/v3/properties/deals",
        headers=AUTH,
        json={
            "name": ORDER_ID_PROPERTY,
            "label": "x",
            "type": "string",
            "fieldType": "text",
            "groupName": "dealinformation",
            "hasUniqueValue": True,
        },
    )
    assert taken.status_code == 409
    _is_hubspot_error(taken.json(), "OBJECT_ALREADY_EXISTS")


async def test_fault_switches_are_read_back_and_cleared(sandbox: httpx.AsyncClient) -> None:
    faults = {"failureRate": 0.3, "latencyMs": 5, "status": 502, "lostAnswerRate": 0.1}
    assert (await sandbox.put("/faults", json=faults)).status_code == 204
    assert (await sandbox.get("/faults")).json() == faults
    assert (await sandbox.put("/faults", json={"status": 200})).status_code == 422
    assert (await sandbox.delete("/faults")).status_code == 204
    assert (await sandbox.get("/faults")).json() == {
        "failureRate": 0,
        "latencyMs": 0,
        "status": None,
        "lostAnswerRate": 0,
    }
    page = await sandbox.get(str(sandbox.base_url).rstrip("/"))
    assert page.status_code == 200
    assert "HubSpot sandbox" in page.text


async def test_the_sandbox_is_not_mounted_in_production(settings: Settings) -> None:
    from api.app import create_app

    app = create_app(production_settings(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            upsert = await http.post(
                "/_sandbox/hubspot/crm/v3/objects/contacts/batch/upsert",
                headers=AUTH,
                json={"inputs": []},
            )
            assert upsert.status_code == 404
            assert (await http.get("/_sandbox/hubspot/deals")).status_code == 404
