"""Idempotency-Key on creating POSTs: Stripe's rules."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from api.idempotency import LEASE_SECONDS
from cli.stack.process import free_port
from core.db import create_session_factory
from core.settings import Settings
from models.users import User
from tests.factories import PASSWORD, register, signed_up, unique_email
from tests.live import live_api, send_cut_short


async def _users_with(engine: AsyncEngine, email: str) -> int:
    async with create_session_factory(engine)() as session:
        return int(
            (
                await session.exec(
                    select(func.count()).select_from(User).where(User.email == email)
                )
            ).one()
        )


async def test_the_same_key_and_body_replay_the_first_answer(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = unique_email("idem")
    body = {"email": email, "password": PASSWORD, "name": "Once"}
    headers = {"Idempotency-Key": f"register-{email}"}
    first = await client.post("/api/users", json=body, headers=headers)
    second = await client.post("/api/users", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _users_with(engine, email) == 1
    # Without the key the same body is a new request: here, a duplicate email.
    assert (await client.post("/api/users", json=body)).status_code == 409


async def test_the_same_key_with_another_body_is_409(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"k-{unique_email()}"}
    first = await client.post(
        "/api/users", json={"email": unique_email(), "password": PASSWORD, "name": "A"}, headers=key
    )
    assert first.status_code == 201
    other = await client.post(
        "/api/users", json={"email": unique_email(), "password": PASSWORD, "name": "B"}, headers=key
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"


async def test_the_same_json_written_out_again_is_the_same_request(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """A retry whose body a client library serialised anew (other spacing, keys in
    another order) is the same request: replayed, not 409 idempotency_key_reused."""
    email = unique_email("idem")
    key = {"Idempotency-Key": f"respelled-{email}", "Content-Type": "application/json"}
    first = await client.post(
        "/api/users",
        content=f'{{"email": "{email}", "password": "{PASSWORD}", "name": "Once"}}',
        headers=key,
    )
    again = await client.post(
        "/api/users",
        content=f'{{\n  "name":"Once",\n  "password":"{PASSWORD}",\n  "email":"{email}"\n}}',
        headers=key,
    )
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await _users_with(engine, email) == 1
    # A value changed is another request still.
    other = await client.post(
        "/api/users",
        content=f'{{"email": "{email}", "password": "{PASSWORD}", "name": "Twice"}}',
        headers=key,
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"


async def test_client_errors_are_replayed_too(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"bad-{unique_email()}"}
    body = {"email": unique_email(), "password": "short", "name": "W"}
    first = await client.post("/api/users", json=body, headers=key)
    again = await client.post("/api/users", json=body, headers=key)
    assert first.status_code == again.status_code == 422
    assert again.json()["code"] == "weak_password"
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_body_refused_for_its_content_type_is_not_kept(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """The 415 of JSON sent as form-urlencoded is not the request's answer (nothing read
    it): the retry with the Content-Type set, and the same key, runs."""
    email = unique_email("idem")
    key = {"Idempotency-Key": f"typed-{email}"}
    sent = json.dumps({"email": email, "password": PASSWORD, "name": "Typed"})
    form = {**key, "Content-Type": "application/x-www-form-urlencoded"}
    refused = await client.post("/api/users", content=sent, headers=form)
    assert refused.status_code == 415, refused.text
    retried = await client.post(
        "/api/users", content=sent, headers={**key, "Content-Type": "application/json"}
    )
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await _users_with(engine, email) == 1


async def test_a_body_its_endpoint_never_ran_for_is_not_kept(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """A request refused by its own validation (an unknown field or query parameter, a
    field missing) ran nothing: the corrected retry with the same key runs (Stripe keeps
    no answer for a request that failed validation), where it met 409
    idempotency_key_reused."""
    email = unique_email("idem")
    key = {"Idempotency-Key": f"fixed-{email}"}
    typo = {"email": email, "password": PASSWORD, "nmae": "Typo"}
    refused = await client.post("/api/users", json=typo, headers=key)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "unknown_field"
    missing = await client.post("/api/users", json={"email": email}, headers=key)
    assert missing.status_code == 422, missing.text
    assert "idempotent-replayed" not in missing.headers
    fixed = {"email": email, "password": PASSWORD, "name": "Fixed"}
    # A query parameter the operation does not take (api/query_parameters.py) likewise.
    unknown = await client.post("/api/users?source=app", json=fixed, headers=key)
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["code"] == "unknown_parameter"
    retried = await client.post("/api/users", json=fixed, headers=key)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    again = await client.post("/api/users", json=fixed, headers=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert await _users_with(engine, email) == 1


async def test_racing_requests_with_one_key_create_one_thing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = unique_email("race")
    body = {"email": email, "password": PASSWORD, "name": "Racer"}
    headers = {"Idempotency-Key": f"race-{email}"}
    responses = await asyncio.gather(
        *(client.post("/api/users", json=body, headers=headers) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_progress"
            # At most until the first request's lease would lapse (its process may die).
            assert 1 <= int(r.headers["retry-after"]) <= math.ceil(LEASE_SECONDS)
    assert await _users_with(engine, email) == 1


async def test_keys_belong_to_their_caller(client: httpx.AsyncClient) -> None:
    user_a, a = await signed_up(client)
    user_b, b = await signed_up(client)
    key = "same-key-for-two-people"
    body = {
        "name": "Home",
        "street": "1 Main St",
        "city": "Boston",
        "state": "MA",
        "zip": "02101",
        "country": "US",
    }
    first = await client.post(
        f"/api/users/{user_a['id']}/addresses", json=body, headers=a | {"Idempotency-Key": key}
    )
    second = await client.post(
        f"/api/users/{user_b['id']}/addresses", json=body, headers=b | {"Idempotency-Key": key}
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["userId"] == user_a["id"]
    assert second.json()["userId"] == user_b["id"]


async def test_a_revoked_token_replays_nothing(client: httpx.AsyncClient) -> None:
    """The stored answer of a deleted account's address (erased with the account) was
    replayed, for 24 hours, to anyone holding its revoked token and the key."""
    user, headers = await signed_up(client)
    keyed = headers | {"Idempotency-Key": f"address-{user['id']}"}
    body = {"name": "Home", "street": "1 Main St", "city": "Boston", "state": "MA", "zip": "02101"}
    path = f"/api/users/{user['id']}/addresses"
    created = await client.post(path, json=body | {"country": "US"}, headers=keyed)
    assert created.status_code == 201, created.text
    gone = await client.delete(f"/api/users/{user['id']}", headers=headers)
    assert gone.status_code == 204
    again = await client.post(path, json=body | {"country": "US"}, headers=keyed)
    assert again.status_code == 401, again.text
    assert again.json()["code"] == "token_revoked"
    assert "idempotent-replayed" not in again.headers


async def test_a_malformed_key_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users",
        json={"email": unique_email(), "password": PASSWORD, "name": "X"},
        headers={"Idempotency-Key": "x" * 256},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


async def test_sign_in_answers_are_never_replayed(client: httpx.AsyncClient) -> None:
    user = await register(client)
    key = {"Idempotency-Key": f"login-{unique_email()}"}
    body = {"email": user["email"], "password": PASSWORD}
    first = await client.post("/api/auth/login", json=body, headers=key)
    second = await client.post("/api/auth/login", json=body, headers=key)
    assert first.status_code == second.status_code == 200
    assert "idempotent-replayed" not in second.headers
    assert first.json()["refreshToken"] != second.json()["refreshToken"]


async def test_a_body_cut_short_by_a_lost_client_is_neither_run_nor_kept(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Over a real socket: a client that dies halfway through its body. What arrived is not
    its request: answered (invalid JSON, 422) and kept under the key, the client's retry of
    the whole request with that key was refused as another body, for a day."""
    email = unique_email("cut-short")
    body = json.dumps({"email": email, "password": PASSWORD, "name": "Whole"}).encode()
    key = f"register-{email}"
    live = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(live) as base, httpx.AsyncClient(base_url=base) as http:
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        await send_cut_short(base, "/api/users", headers, body)
        retried = await http.post("/api/users", content=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await _users_with(engine, email) == 1
