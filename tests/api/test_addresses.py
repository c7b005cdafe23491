"""The address book's edge: the rules checkout applies, and its size under concurrency."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from models.users import Address
from services.addresses import MAX_ADDRESSES_PER_USER
from tests.factories import signed_up


def _address(**overrides: object) -> dict[str, object]:
    return {
        "name": "Ada Lovelace",
        "street": "123 Main St",
        "city": "Boston",
        "state": "MA",
        "zip": "02101",
        "country": "US",
    } | overrides


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (response.json()["code"], response.json()["field"]) == ("invalid_address", field)


@pytest.mark.parametrize("state", [None, "", "   "])
async def test_a_us_address_without_a_state_is_refused_as_checkout_refuses_it(
    client: httpx.AsyncClient, state: str | None
) -> None:
    """Kept in the book before (201), then refused at checkout with `invalid_address`."""
    user, headers = await signed_up(client)
    base = f"/api/users/{user['id']}/addresses"
    _refused(await client.post(base, headers=headers, json=_address(state=state)), "state")
    assert (await client.get(base, headers=headers)).json() == []
    # Elsewhere a state is the address's own business.
    paris = _address(city="Paris", state=state, zip="75001", country="FR")
    assert (await client.post(base, headers=headers, json=paris)).status_code == 201


async def test_a_change_that_leaves_a_us_address_without_a_state_is_refused(
    client: httpx.AsyncClient,
) -> None:
    user, headers = await signed_up(client)
    base = f"/api/users/{user['id']}/addresses"
    boston = (await client.post(base, headers=headers, json=_address())).json()
    path = f"{base}/{boston['id']}"
    _refused(await client.patch(path, headers=headers, json={"state": None}), "state")
    _refused(await client.put(path, headers=headers, json=_address(state=None)), "state")
    london = await client.post(
        base, headers=headers, json=_address(state=None, zip="SW1A 1AA", country="GB")
    )
    assert london.status_code == 201, london.text
    moved = {"country": "US", "zip": "10001"}
    london_path = f"{base}/{london.json()['id']}"
    _refused(await client.patch(london_path, headers=headers, json=moved), "state")
    ok = await client.patch(london_path, headers=headers, json=moved | {"state": "NY"})
    assert ok.status_code == 200, ok.text
    listed = {a["id"]: a["state"] for a in (await client.get(base, headers=headers)).json()}
    assert listed == {boston["id"]: "MA", london.json()["id"]: "NY"}


async def test_concurrent_adds_never_overfill_the_book(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Each add counted the book and then inserted: concurrent adds all counted the same
    size and all got in, past the limit. Now they count one after the other."""
    user, headers = await signed_up(client)
    room = 3
    async with transaction(create_session_factory(engine)) as session:
        for n in range(MAX_ADDRESSES_PER_USER - room):
            session.add(
                Address(
                    user_id=user["id"],
                    name="Ada Lovelace",
                    street=f"{n} Main St",
                    city="Boston",
                    state="MA",
                    zip="02101",
                    country="US",
                )
            )
    base = f"/api/users/{user['id']}/addresses"
    answers = await asyncio.gather(
        *(
            client.post(base, headers=headers, json=_address(street=f"{n} Side St"))
            for n in range(12)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * room + [422] * (12 - room), [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 422} == {"address_book_full"}
    listed = (await client.get(base, headers=headers)).json()
    assert len(listed) == MAX_ADDRESSES_PER_USER
