"""SendGrid Marketing through the real SDK against the sandbox over HTTP, and the sandbox
answering like SendGrid to raw requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.settings import Settings
from integrations.email.sender import SANDBOX_API_KEY
from integrations.marketing.client import (
    CustomerContact,
    MarketingProviderUnavailable,
    MarketingRejected,
)
from integrations.marketing.factory import build_marketing_client
from integrations.marketing.sendgrid import SendGridMarketing
from tests.factories import unique_email
from tests.live import LiveStack

KEY = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
MARKETING = "/_sandbox/sendgrid/v3/marketing"


def _contact(email: str, **overrides: Any) -> CustomerContact:
    fields: dict[str, Any] = {
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "lifetime_value": Decimal("123.45"),
        "orders_count": 2,
        "last_order_date": date(2026, 12, 1),
    } | overrides
    return CustomerContact(**fields)


@pytest.fixture
async def http(live: LiveStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        yield client
        await client.delete("/_sandbox/sendgrid/faults")


def _client(live: LiveStack) -> SendGridMarketing:
    return build_marketing_client(live.settings)


async def _held(http: httpx.AsyncClient, email: str) -> list[dict[str, Any]]:
    response = await http.get("/_sandbox/mail/marketing/contacts", params={"email": email})
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.json()
    return found


async def test_a_customer_is_upserted_with_fields_and_list_through_the_sdk(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    email = unique_email("mkt")
    marketing = _client(live)
    job = await marketing.upsert_customer(_contact(email.upper()), add_to_list=True)
    assert job

    [contact] = await _held(http, email)
    assert contact["customFields"] == {
        "lifetime_value": 123.45,
        "orders_count": 2,
        "last_order_date": "12/01/2026",
    }
    assert contact["lists"] == [live.settings.sendgrid_customers_list]
    assert (contact["firstName"], contact["lastName"]) == ("Ada", "Lovelace")
    # Absolute values by email: sending again (another process, fresh caches) updates the
    # one contact, and finds the fields and the list rather than making new ones.
    other = _client(live)
    await other.upsert_customer(_contact(email, orders_count=3), add_to_list=False)
    [again] = await _held(http, email)
    assert again["id"] == contact["id"]
    assert again["customFields"]["orders_count"] == 3
    assert again["lists"] == contact["lists"]
    assert await other.field_ids() == await marketing.field_ids()
    assert await other.customers_list_id() == await marketing.customers_list_id()
    names = [
        f["name"]
        for f in (await http.get(f"{MARKETING}/field_definitions", headers=KEY)).json()[
            "custom_fields"
        ]
    ]
    assert sorted(n for n in names if n in ("lifetime_value", "orders_count")) == [
        "lifetime_value",
        "orders_count",
    ]


async def test_contacts_are_found_and_deleted_by_email(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    email, never = unique_email("gdpr"), unique_email("never")
    marketing = _client(live)
    await marketing.upsert_customer(_contact(email), add_to_list=True)
    [contact] = await _held(http, email)
    assert await marketing.contact_ids([email, never]) == [contact["id"]]

    assert await marketing.delete_contacts([email, never]) == 1

    assert await _held(http, email) == []
    assert await marketing.contact_ids([email]) == []  # SendGrid answers 404 for none
    assert await marketing.delete_contacts([email]) == 0


async def test_an_outage_is_retryable_and_a_lost_answer_is_safe_to_repeat(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    email = unique_email("down")
    marketing = _client(live)
    await marketing.field_ids()
    await marketing.customers_list_id()
    await http.put("/_sandbox/sendgrid/faults", json={"mode": "down", "count": 1, "to": email})
    with pytest.raises(MarketingProviderUnavailable, match="503") as down:
        await marketing.upsert_customer(_contact(email), add_to_list=True)
    assert down.value.retryable
    assert await _held(http, email) == []

    await http.put(
        "/_sandbox/sendgrid/faults", json={"mode": "accept_then_fail", "count": 1, "to": email}
    )
    with pytest.raises(MarketingProviderUnavailable, match="500") as lost:
        await marketing.upsert_customer(_contact(email), add_to_list=True)
    assert lost.value.retryable
    assert len(await _held(http, email)) == 1  # kept, though the answer said otherwise
    await marketing.upsert_customer(_contact(email), add_to_list=True)  # the retry
    assert len(await _held(http, email)) == 1


async def test_a_refused_contact_is_not_retryable(live: LiveStack) -> None:
    with pytest.raises(MarketingRejected, match="email") as caught:
        await _client(live).upsert_customer(_contact("not-an-address"), add_to_list=False)
    assert not caught.value.retryable


async def test_an_unreachable_provider_is_retryable(settings: Settings) -> None:
    from cli.stack.process import free_port

    nowhere = SendGridMarketing(
        SANDBOX_API_KEY, f"http://127.0.0.1:{free_port()}", list_name="customers"
    )
    with pytest.raises(MarketingProviderUnavailable, match="unreachable") as caught:
        await nowhere.upsert_customer(_contact(unique_email()), add_to_list=True)
    assert caught.value.retryable


# --- the sandbox's wire format ----------------------------------------------------------


async def test_a_bad_key_is_401(http: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/lists"), ("PUT", "/contacts"), ("GET", "/field_definitions")):
        response = await http.request(
            method, f"{MARKETING}{path}", headers={"Authorization": "Bearer nope"}, json={}
        )
        assert response.status_code == 401


async def test_fields_are_checked_like_sendgrid_checks_them(http: httpx.AsyncClient) -> None:
    name = f"f_{unique_email('x').split('@')[0].replace('-', '_')}"
    created = await http.post(
        f"{MARKETING}/field_definitions", json={"name": name, "field_type": "Number"}, headers=KEY
    )
    assert created.status_code == 200
    assert created.json()["field_type"] == "Number"
    for body, field in (
        ({"name": name.upper(), "field_type": "Text"}, "name"),  # taken, whatever the case
        ({"name": "first_name", "field_type": "Text"}, "name"),  # reserved
        ({"name": "9lives", "field_type": "Text"}, "name"),
        ({"name": "fine_name", "field_type": "Boolean"}, "field_type"),
    ):
        response = await http.post(f"{MARKETING}/field_definitions", json=body, headers=KEY)
        assert response.status_code == 400, body
        assert field in {e["field"] for e in response.json()["errors"]}
    number_field = created.json()["id"]
    bad_value = await http.put(
        f"{MARKETING}/contacts",
        json={"contacts": [{"email": unique_email(), "custom_fields": {number_field: "many"}}]},
        headers=KEY,
    )
    assert bad_value.status_code == 400
    assert bad_value.json()["errors"][0]["field"] == f"contacts[0].custom_fields.{number_field}"
    unknown = await http.put(
        f"{MARKETING}/contacts",
        json={"list_ids": ["no-such-list"], "contacts": [{"email": unique_email()}]},
        headers=KEY,
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "list_ids"


async def test_lists_contacts_search_and_delete_speak_sendgrid(http: httpx.AsyncClient) -> None:
    name = f"list {unique_email('l')}"
    created = await http.post(f"{MARKETING}/lists", json={"name": name}, headers=KEY)
    assert created.status_code == 201
    list_id = created.json()["id"]
    assert (
        await http.post(f"{MARKETING}/lists", json={"name": name}, headers=KEY)
    ).status_code == 400
    email = unique_email("wire")
    put = await http.put(
        f"{MARKETING}/contacts",
        json={"list_ids": [list_id], "contacts": [{"email": email, "first_name": "Bo"}]},
        headers=KEY,
    )
    assert put.status_code == 202
    assert put.json()["job_id"]
    lists = (await http.get(f"{MARKETING}/lists", headers=KEY)).json()["result"]
    assert {"id": list_id, "name": name, "contact_count": 1} in lists
    missing = unique_email("missing")
    found = await http.post(
        f"{MARKETING}/contacts/search/emails", json={"emails": [email, missing]}, headers=KEY
    )
    assert found.status_code == 200
    result = found.json()["result"]
    assert result[missing] == {"error": "contact not found"}
    contact_id = result[email]["contact"]["id"]
    assert result[email]["contact"]["list_ids"] == [list_id]
    none = await http.post(
        f"{MARKETING}/contacts/search/emails", json={"emails": [missing]}, headers=KEY
    )
    assert none.status_code == 404
    assert (await http.delete(f"{MARKETING}/contacts", headers=KEY)).status_code == 400
    deleted = await http.delete(f"{MARKETING}/contacts", params={"ids": contact_id}, headers=KEY)
    assert deleted.status_code == 202
    assert await _held(http, email) == []
    view = (await http.get("/_sandbox/mail/marketing/lists")).json()
    assert {"id": list_id, "name": name, "contactCount": 0} in view
