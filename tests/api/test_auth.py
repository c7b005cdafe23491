"""register → login → me → refresh → logout, and what must be refused along the way."""

from __future__ import annotations

import asyncio
import unicodedata
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from core.db import create_session_factory, transaction
from models.auth import RefreshToken
from models.base import utcnow
from services.auth import hash_refresh_token
from tests.factories import (
    PASSWORD,
    ClientFactory,
    bearer,
    login,
    register,
    signed_up,
    staff_headers,
    unique_email,
)


async def test_the_whole_session_flow(client: httpx.AsyncClient) -> None:
    email = unique_email("Flow")
    user = await register(client, email=f"  {email.upper()} ", name="  Grace   Hopper ")
    assert user["email"] == email.lower()
    assert user["name"] == "Grace Hopper"
    assert user["role"] == "customer"
    assert user["id"].startswith("user_")
    assert "password" not in str(user).lower()

    tokens = await login(client, email=email.upper())
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == 900
    assert tokens["refreshExpiresIn"] == 30 * 24 * 3600
    assert tokens["refreshToken"].startswith("rt_")
    assert tokens["user"]["id"] == user["id"]

    me = await client.get("/api/users/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["email"] == email.lower()

    rotated = await client.post("/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["refreshToken"] != tokens["refreshToken"]
    assert (await client.get("/api/users/me", headers=bearer(fresh))).status_code == 200

    out = await client.post(
        "/api/auth/logout", headers=bearer(fresh), json={"refreshToken": fresh["refreshToken"]}
    )
    assert out.status_code == 204
    refused = await client.get("/api/users/me", headers=bearer(fresh))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
    again = await client.post("/api/auth/refresh", json={"refreshToken": fresh["refreshToken"]})
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_refresh_token"


async def test_logout_revokes_only_that_session(client: httpx.AsyncClient) -> None:
    user = await register(client)
    laptop = await login(client, email=user["email"])
    phone = await login(client, email=user["email"])
    assert (await client.post("/api/auth/logout", headers=bearer(laptop))).status_code == 204
    assert (await client.get("/api/users/me", headers=bearer(laptop))).status_code == 401
    assert (await client.get("/api/users/me", headers=bearer(phone))).status_code == 200


async def test_logout_leaves_another_accounts_session_it_was_sent_alone(
    client: httpx.AsyncClient,
) -> None:
    """The family of ``refreshToken`` ends with the caller's session only if it is the
    caller's: another account's token is ignored, as an unknown one is."""
    ada = await login(client, email=(await register(client))["email"])
    bob = await login(client, email=(await register(client))["email"])
    out = await client.post(
        "/api/auth/logout", headers=bearer(ada), json={"refreshToken": bob["refreshToken"]}
    )
    assert out.status_code == 204, out.text
    assert (await client.get("/api/users/me", headers=bearer(ada))).status_code == 401
    assert (await client.get("/api/users/me", headers=bearer(bob))).status_code == 200
    kept = await client.post("/api/auth/refresh", json={"refreshToken": bob["refreshToken"]})
    assert kept.status_code == 200, kept.text


async def test_reusing_a_rotated_refresh_token_ends_the_whole_family(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    first = await login(client, email=user["email"])
    second = (
        await client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    ).json()
    third = (
        await client.post("/api/auth/refresh", json={"refreshToken": second["refreshToken"]})
    ).json()

    reuse = await client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"

    # Everything issued in that family is dead: the newest refresh token and access token.
    newest = await client.post("/api/auth/refresh", json={"refreshToken": third["refreshToken"]})
    assert newest.status_code == 401
    assert newest.json()["code"] == "invalid_refresh_token"
    me = await client.get("/api/users/me", headers=bearer(third))
    assert me.status_code == 401
    assert me.json()["code"] == "token_revoked"

    # Another login of the same account is a different family and keeps working.
    other = await login(client, email=user["email"])
    assert (await client.get("/api/users/me", headers=bearer(other))).status_code == 200


async def test_tampered_expired_and_missing_tokens_are_refused(
    client: httpx.AsyncClient, make_client: ClientFactory
) -> None:
    _, headers = await signed_up(client)
    token = headers["Authorization"].removeprefix("Bearer ")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"

    missing = await client.get("/api/users/me")
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthenticated"
    assert missing.headers["www-authenticate"] == "Bearer"

    short_lived = await make_client(access_token_ttl_seconds=30)
    user = await register(short_lived)
    tokens = await login(short_lived, email=user["email"])
    # Another secret: a token signed elsewhere is not ours.
    foreign = await make_client(jwt_secret="another-secret-that-is-long-enough-for-hs256")
    response = await foreign.get("/api/users/me", headers=bearer(tokens))
    assert response.json()["code"] == "invalid_token"


async def test_wrong_password_and_unknown_email_answer_alike(client: httpx.AsyncClient) -> None:
    user = await register(client)
    wrong = await client.post(
        "/api/auth/login", json={"email": user["email"], "password": "not the password at all"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": unique_email("nobody"), "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401

    def strip(response: httpx.Response) -> dict[str, object]:
        return {k: v for k, v in response.json().items() if k not in {"requestId", "traceId"}}

    assert strip(wrong) == strip(unknown)
    assert wrong.json()["code"] == "invalid_credentials"


async def test_failed_logins_are_throttled_then_released(make_client: ClientFactory) -> None:
    client = await make_client(login_max_failures_per_email=3, login_throttle_window_seconds=2)
    user = await register(client)
    for _ in range(3):
        failed = await client.post(
            "/api/auth/login", json={"email": user["email"], "password": "wrong password here"}
        )
        assert failed.status_code == 401
    # Over the limit even the right password is refused, so guessing cannot go on.
    blocked = await client.post(
        "/api/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "too_many_attempts"
    assert 1 <= int(blocked.headers["retry-after"]) <= 2
    await asyncio.sleep(int(blocked.headers["retry-after"]) + 0.2)
    assert (await login(client, email=user["email"]))["user"]["id"] == user["id"]


async def test_failed_logins_are_throttled_per_address_too(make_client: ClientFactory) -> None:
    client = await make_client(
        login_max_failures_per_ip=4,
        login_max_failures_per_email=100,
        login_throttle_window_seconds=60,
    )
    for _ in range(4):
        response = await client.post(
            "/api/auth/login", json={"email": unique_email(), "password": "wrong password here"}
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/api/auth/login", json={"email": unique_email(), "password": "wrong password here"}
    )
    assert blocked.status_code == 429


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short pass", "at least 15"),
        ("x" * 257, "at most 256"),
        ("1qaz2wsx3edc4rfv", "commonly used"),
        ("123456789012345678", "easy to guess"),
        ("aaaaaaaaaaaaaaaaaaaa", "easy to guess"),
        ("qwertyuiopasdfghjkl", "easy to guess"),
    ],
)
async def test_weak_passwords_are_refused(
    client: httpx.AsyncClient, password: str, why: str
) -> None:
    response = await client.post(
        "/api/users", json={"email": unique_email(), "password": password, "name": "Weak"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "weak_password"
    assert body["field"] == "password"
    assert why in body["detail"]


async def test_a_password_built_from_the_email_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users",
        json={
            "email": "margaret.hamilton@example.com",
            "password": "margaret.hamilton2024!",
            "name": "Margaret",
        },
    )
    assert response.status_code == 422
    assert response.json()["code"] == "weak_password"


async def test_emails_are_unique_whatever_their_case(client: httpx.AsyncClient) -> None:
    email = unique_email("dup")
    await register(client, email=email)
    response = await client.post(
        "/api/users", json={"email": email.upper(), "password": PASSWORD, "name": "Twin"}
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "email_taken"
    assert body["field"] == "email"


def sized_email(local: int, whole: int) -> str:
    """A unique, well-formed address with ``local`` characters before the @-sign and
    ``whole`` in all (labels of at most 63, under example.com)."""
    mark = uuid4().hex
    before = (mark + "a" * local)[:local]
    labels, left = [], whole - local - len("@example.com")
    while left > 0:
        label = min(63, left - 1) if left > 1 else 1
        labels.append("b" * label)
        left -= label + 1
    address = f"{before}@{''.join(f'{label}.' for label in labels)}example.com"
    assert (address.index("@"), len(address)) == (local, whole)
    return address


async def test_an_address_longer_than_smtp_carries_is_refused_as_a_malformed_one(
    client: httpx.AsyncClient,
) -> None:
    """RFC 5321 §4.5.3.1: 64 octets before the @-sign, 254 in all. Past either, sign-up
    answers as it does an address that is not one: 422 validation_error naming email."""
    for longest in (sized_email(64, 80), sized_email(64, 254), sized_email(20, 254)):
        taken = await client.post(
            "/api/users", json={"email": longest, "password": PASSWORD, "name": "Long"}
        )
        assert taken.status_code == 201, (longest, taken.text)
    malformed = await client.post(
        "/api/users", json={"email": "not-an-email", "password": PASSWORD, "name": "X"}
    )
    [expected] = malformed.json()["errors"]
    for too_long in (sized_email(65, 80), "é" * 33 + "@example.com", sized_email(20, 255)):
        refused = await client.post(
            "/api/users", json={"email": too_long, "password": PASSWORD, "name": "Long"}
        )
        assert refused.status_code == 422, (too_long, refused.text)
        problem = refused.json()
        assert problem["code"] == "validation_error"
        [error] = problem["errors"]
        assert (error["field"], error["type"]) == (expected["field"], expected["type"])
        assert error["message"].startswith("value is not a valid email address: ")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email", "password", "name"}),
        ({"email": "not-an-email", "password": PASSWORD, "name": "X"}, {"email"}),
        ({"email": unique_email(), "password": PASSWORD, "name": "   "}, {"name"}),
        ({"email": unique_email(), "password": PASSWORD, "name": "x" * 201}, {"name"}),
        ({"email": unique_email(), "password": "", "name": "X"}, {"password"}),
        ({"email": unique_email(), "password": 12345, "name": "X"}, {"password"}),
        ({"email": "a" * 320 + "@example.com", "password": PASSWORD, "name": "X"}, {"email"}),
    ],
)
async def test_registration_validates_every_field(
    client: httpx.AsyncClient, body: dict[str, object], fields: set[str]
) -> None:
    response = await client.post("/api/users", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert {e["field"] for e in problem["errors"]} == fields


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/api/auth/login", {}, {"email", "password"}),
        ("/api/auth/login", {"email": "", "password": "x"}, {"email"}),
        ("/api/auth/refresh", {}, {"refreshToken"}),
        ("/api/auth/refresh", {"refreshToken": "x" * 300}, {"refreshToken"}),
    ],
)
async def test_auth_endpoints_validate_their_fields(
    client: httpx.AsyncClient, path: str, body: dict[str, object], fields: set[str]
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == fields


async def test_an_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/refresh", json={"refreshToken": "rt_made_up"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


async def _locked_out(client: httpx.AsyncClient, email: str) -> None:
    for _ in range(3):
        failed = await client.post(
            "/api/auth/login", json={"email": email, "password": "wrong password here"}
        )
        assert failed.status_code == 401
    blocked = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert blocked.status_code == 429


async def test_staff_lift_a_sign_in_lock_out(
    make_client: ClientFactory, engine: AsyncEngine
) -> None:
    client = await make_client(login_max_failures_per_email=3, login_throttle_window_seconds=600)
    staff = await staff_headers(client, engine)
    user = await register(client)
    await _locked_out(client, user["email"])
    refused = await client.post("/api/admin/sign-in-locks/unlock", json={"email": user["email"]})
    assert refused.status_code == 401
    customer = await signed_up(client)
    forbidden = await client.post(
        "/api/admin/sign-in-locks/unlock", json={"email": user["email"]}, headers=customer[1]
    )
    assert forbidden.status_code == 403
    empty = await client.post("/api/admin/sign-in-locks/unlock", json={}, headers=staff)
    assert empty.status_code == 422
    lifted = await client.post(
        "/api/admin/sign-in-locks/unlock",
        json={"email": user["email"].upper()},
        headers=staff,
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["unlocked"] is True
    assert (await login(client, email=user["email"]))["user"]["id"] == user["id"]
    again = await client.post(
        "/api/admin/sign-in-locks/unlock", json={"email": user["email"]}, headers=staff
    )
    assert again.json()["unlocked"] is False


async def test_parallel_guesses_cannot_slip_under_the_throttle(make_client: ClientFactory) -> None:
    client = await make_client(login_max_failures_per_email=5, login_throttle_window_seconds=60)
    user = await register(client)
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/auth/login", json={"email": user["email"], "password": f"guess number {i}"}
            )
            for i in range(20)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) <= 5
    assert statuses.count(429) >= 15


async def test_a_refresh_token_minted_while_its_session_was_revoked_is_dead(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await register(client)
    first = await login(client, email=user["email"])
    second = (
        await client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    ).json()
    # What a logout racing that refresh leaves behind: the old token revoked, the new
    # one (inserted after the logout's UPDATE began) not.
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.token_hash) == hash_refresh_token(first["refreshToken"]))
            .values(revoked_at=utcnow())
        )
    response = await client.post("/api/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert response.status_code == 401


def _typed_unlike_stored(tag: str) -> tuple[str, str]:
    """An address as a keyboard may type it (decomposed accents, an IDNA domain in its
    ASCII form) and as registration stores it (NFC, the domain in Unicode, lower case)."""
    local = f"josé-{tag}-{uuid4().hex[:8]}"
    typed = unicodedata.normalize("NFD", local.capitalize()) + "@XN--EXMPLE-CUA.com"
    return typed, f"{local}@exämple.com"


async def test_the_address_typed_at_registration_signs_in(client: httpx.AsyncClient) -> None:
    typed, stored = _typed_unlike_stored("in")
    user = await register(client, email=typed)
    assert user["email"] == stored
    # Sign-in looked the address up only trimmed and lower-cased: 401 invalid_credentials.
    assert (await login(client, email=typed))["user"]["id"] == user["id"]
    assert (await login(client, email=stored.upper()))["user"]["id"] == user["id"]


async def test_every_spelling_of_an_address_shares_its_sign_in_lock(
    make_client: ClientFactory,
) -> None:
    client = await make_client(login_max_failures_per_email=3, login_throttle_window_seconds=600)
    typed, stored = _typed_unlike_stored("lock")
    await register(client, email=stored)
    for _ in range(3):
        failed = await client.post(
            "/api/auth/login", json={"email": typed, "password": "wrong password here"}
        )
        assert failed.status_code == 401
    blocked = await client.post("/api/auth/login", json={"email": stored, "password": PASSWORD})
    assert blocked.status_code == 429, blocked.text
