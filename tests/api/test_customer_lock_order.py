"""One lock order for a customer's rows (``core.db.locked``): the account's row, then the
cart's. Each test races two requests of one customer that took the two rows in opposite
orders, in the interleaving where each waited for the other (PostgreSQL then aborted one
as a deadlock, 503 ``database_unavailable``), and asserts both go through.

Made deterministic: the first request is held at a point of its own (``Hold``), the
second is let run until it is seen waiting on a row lock, and the first is let go. No
sleep orders the two."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.carts import Cart
from services import passwords
from services.auth import RefreshTokenRepository, hash_refresh_token
from services.cart_repository import CartRepository
from tests.events.erasure_race import Hold
from tests.factories import PASSWORD, bearer, login, register, signed_up, stocked_product
from tests.lock_waits import waiting_on_locks
from tests.orders.helpers import order_body
from tests.stack import TEST_HASH_COST


async def make_rehash_due(engine: AsyncEngine, user_id: str) -> None:
    """The account's password hashed at another cost than the configured one: its next
    sign-in upgrades the hash (a write of the account's row)."""
    older = PasswordHasher(
        time_cost=TEST_HASH_COST["password_hash_time_cost"] + 1,
        memory_cost=TEST_HASH_COST["password_hash_memory_kib"],
        parallelism=TEST_HASH_COST["password_hash_parallelism"],
    ).hash(PASSWORD)
    assert passwords.needs_rehash(older)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE users SET password_hash = :hash WHERE id = :id"),
            {"hash": older, "id": user_id},
        )


async def stored_hash(engine: AsyncEngine, user_id: str) -> str:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT password_hash FROM users WHERE id = :id"), {"id": user_id}
        )
        return str(found.scalar_one())


async def added(client: httpx.AsyncClient, line: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post("/api/cart/items", json=line, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def race(
    engine: AsyncEngine,
    paused: Hold,
    first: Awaitable[httpx.Response],
    second: Callable[[], Awaitable[httpx.Response]],
    *,
    waits: bool = True,
) -> tuple[httpx.Response, httpx.Response]:
    """``first`` until it reaches ``paused``; ``second`` until it waits on a row lock;
    then ``first`` let go. Both answers. Without ``waits``, for two requests that need not
    wait for each other at all: ``first`` is let go once ``second`` waits on a row lock
    or has its answer."""
    running = asyncio.ensure_future(first)
    await asyncio.wait_for(paused.reached.wait(), 30)
    racing = asyncio.ensure_future(second())
    waiting = asyncio.ensure_future(waiting_on_locks(engine, 1))
    if waits:
        await waiting
    else:
        await asyncio.wait({racing, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    paused.release.set()
    return await running, await racing


def hold_after(
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    name: str,
    when: Callable[..., bool],
    paused: Hold | None = None,
) -> Hold:
    """Stop the first call of ``owner.name`` whose arguments ``when`` accepts, right after
    it returned (the row it locked is held); with ``paused``, only if nothing stopped at
    that hold yet (one hold for whichever of several calls comes first)."""
    paused = paused or Hold()
    original = getattr(owner, name)

    async def held(self: object, *args: Any, **kwargs: Any) -> Any:
        found = await original(self, *args, **kwargs)
        if when(*args, **kwargs) and not paused.reached.is_set():
            await paused.point()
        return found

    monkeypatch.setattr(owner, name, held)
    return paused


def hold_after_locking_the_cart(monkeypatch: pytest.MonkeyPatch, user_id: str) -> Hold:
    """Stop the first request that locks ``user_id``'s active cart, right after it did."""
    return hold_after(
        monkeypatch,
        CartRepository,
        "active_for_user",
        lambda owner, lock=False: lock and owner == user_id,
    )


async def test_checkout_racing_a_sign_in_that_rehashes_and_merges_both_go_through(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checkout held the account (``FOR SHARE``), then locked the cart; the sign-in locked
    the carts to merge, then rewrote the account (the rehash): each waited for the other.
    Checkout is held between its two locks."""
    user, auth = await signed_up(client)
    product = await stocked_product(client, staff, price=1500, stock=20)
    line = {"productId": product["id"], "quantity": 1}
    cart_token = (await added(client, line))["cartToken"]
    cart_id = (await added(client, line, **auth))["id"]
    await make_rehash_due(engine, user["id"])

    paused = Hold()
    get_cart = CartRepository.get

    async def held(self: CartRepository, wanted: str, *, lock: bool = False) -> Cart | None:
        if lock and wanted == cart_id and not paused.reached.is_set():
            await paused.point()  # the account is held, the cart not yet locked
        return await get_cart(self, wanted, lock=lock)

    monkeypatch.setattr(CartRepository, "get", held)

    placed, signed_in = await race(
        engine,
        paused,
        client.post("/api/orders", json=order_body(cart_id), headers=auth),
        lambda: client.post(
            "/api/auth/login",
            json={"email": user["email"], "password": PASSWORD},
            headers={"X-Cart-Token": cart_token},
        ),
    )

    assert placed.status_code == 202, placed.text
    assert signed_in.status_code == 200, signed_in.text
    assert not passwords.needs_rehash(await stored_hash(engine, user["id"]))
    # The customer's cart was being checked out: the guest cart is kept, to merge later.
    guest = await client.get("/api/cart", headers={"X-Cart-Token": cart_token})
    assert guest.status_code == 200, guest.text
    assert [item["quantity"] for item in guest.json()["items"]] == [1]


async def test_add_to_cart_racing_the_erasure_both_go_through(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Add-to-cart locked the cart, then held the account (its ``add_to_cart`` event);
    the erasure locked the account, then closed the cart. The add is held after its cart
    lock."""
    user, auth = await signed_up(client)
    product = await stocked_product(client, staff, price=1500, stock=20)
    line = {"productId": product["id"], "quantity": 1}
    cart_id = (await added(client, line, **auth))["id"]
    paused = hold_after_locking_the_cart(monkeypatch, user["id"])

    adding, erased = await race(
        engine,
        paused,
        client.post("/api/cart/items", json=line, headers=auth),
        lambda: client.delete(f"/api/users/{user['id']}", headers=auth),
    )

    assert adding.status_code == 201, adding.text
    assert erased.status_code == 204, erased.text
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.status, i.quantity FROM carts c JOIN cart_items i ON i.cart_id = c.id"
                " WHERE c.id = :id"
            ),
            {"id": cart_id},
        )
        assert [tuple(row) for row in rows.all()] == [("closed", 2)]  # added, then closed


async def test_sign_in_merging_a_guest_cart_racing_the_erasure_both_go_through(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sign-in locked the carts to merge, then wrote a refresh token (whose foreign
    key share-locks the account's key); the erasure locked the account, rewrote its
    email (a key: a lock no key share-lock passes), then closed the cart. The sign-in is
    held after it locked the customer's cart."""
    user, auth = await signed_up(client)
    product = await stocked_product(client, staff, price=1500, stock=20)
    line = {"productId": product["id"], "quantity": 1}
    cart_token = (await added(client, line))["cartToken"]
    await added(client, line, **auth)
    paused = hold_after_locking_the_cart(monkeypatch, user["id"])

    signed_in, erased = await race(
        engine,
        paused,
        client.post(
            "/api/auth/login",
            json={"email": user["email"], "password": PASSWORD},
            headers={"X-Cart-Token": cart_token},
        ),
        lambda: client.delete(f"/api/users/{user['id']}", headers=auth),
    )

    assert signed_in.status_code == 200, signed_in.text
    assert erased.status_code == 204, erased.text
    # The session the sign-in opened ended with the account.
    refreshed = await client.post(
        "/api/auth/refresh", json={"refreshToken": signed_in.json()["refreshToken"]}
    )
    assert refreshed.status_code == 401, refreshed.text


async def test_a_shared_carts_edit_racing_the_owners_erasure_both_go_through(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An editor's add through a share link locked the owner's cart, then held the owner's
    account (the ``add_to_cart`` event); the owner's erasure locked the account, then
    closed the cart. The edit is held after its cart lock."""
    owner, owner_auth = await signed_up(client)
    _, editor_auth = await signed_up(client)
    product = await stocked_product(client, staff, price=1500, stock=20)
    line = {"productId": product["id"], "quantity": 1}
    cart_id = (await added(client, line, **owner_auth))["id"]
    share = await client.post("/api/cart/share", json={"canEdit": True}, headers=owner_auth)
    assert share.status_code == 201, share.text

    # Held once the owner's cart is locked.
    paused = hold_after(
        monkeypatch, CartRepository, "get", lambda wanted, lock=False: lock and wanted == cart_id
    )

    edited, erased = await race(
        engine,
        paused,
        client.post(
            f"/api/carts/shared/{share.json()['token']}/items", json=line, headers=editor_auth
        ),
        lambda: client.delete(f"/api/users/{owner['id']}", headers=owner_auth),
    )

    assert edited.status_code == 200, edited.text
    assert erased.status_code == 204, erased.text


async def test_a_refresh_racing_the_erasure_both_go_through(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh locked its token's row, then wrote the next token (whose foreign key
    share-locks the account's key); the erasure locked the account, rewrote its email,
    then revoked the account's tokens. The refresh is held after its token's lock."""
    user = await register(client)
    tokens = await login(client, email=user["email"])
    # Held once the token's row is locked.
    paused = hold_after(
        monkeypatch, RefreshTokenRepository, "by_hash_for_update", lambda token_hash: True
    )

    refreshed, erased = await race(
        engine,
        paused,
        client.post("/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]}),
        lambda: client.delete(f"/api/users/{user['id']}", headers=bearer(tokens)),
    )

    assert refreshed.status_code == 200, refreshed.text
    assert erased.status_code == 204, erased.text
    # The token the refresh issued was revoked with the account's sessions.
    again = await client.post(
        "/api/auth/refresh", json={"refreshToken": refreshed.json()["refreshToken"]}
    )
    assert again.status_code == 401, again.text


async def test_a_logout_racing_the_erasure_both_go_through(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logout locked the refresh token it was given, then revoked its session's tokens
    (its family's older, rotated ones too); the erasure locked the account, then revoked
    every token of the account, the older ones first: each waited for a token the other
    held. The logout is held after its session's lock (taken after the account's)."""
    user = await register(client)
    tokens = await login(client, email=user["email"])
    for _ in range(2):  # the session's older tokens, rotated, stay in its family
        refreshed = await client.post(
            "/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        tokens = refreshed.json()
    paused = hold_after(monkeypatch, RefreshTokenRepository, "lock_family", lambda family: True)

    logged_out, erased = await race(
        engine,
        paused,
        client.post(
            "/api/auth/logout",
            json={"refreshToken": tokens["refreshToken"]},
            headers=bearer(tokens),
        ),
        lambda: client.delete(f"/api/users/{user['id']}", headers=bearer(tokens)),
    )

    assert logged_out.status_code == 204, logged_out.text
    assert erased.status_code == 204, erased.text
    again = await client.post("/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert again.status_code == 401, again.text


async def test_two_logouts_each_sending_the_other_accounts_token_both_go_through(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each logout locked its own account, then the refresh token it was given (the other
    account's) before seeing it was not the caller's, then revoked its own session's
    tokens: each waited for the token the other held. Now the given token is read
    without a lock, and a logout takes nothing of another account's. The first is held
    once it has read the other's token (locked, before)."""
    ada = await login(client, email=(await register(client))["email"])
    bob = await login(client, email=(await register(client))["email"])
    theirs = hash_refresh_token(bob["refreshToken"])
    paused = hold_after(
        monkeypatch, RefreshTokenRepository, "issued_to", lambda token_hash: token_hash == theirs
    )
    hold_after(
        monkeypatch,
        RefreshTokenRepository,
        "by_hash_for_update",
        lambda token_hash: token_hash == theirs,
        paused,
    )

    first, second = await race(
        engine,
        paused,
        client.post(
            "/api/auth/logout", json={"refreshToken": bob["refreshToken"]}, headers=bearer(ada)
        ),
        lambda: client.post(
            "/api/auth/logout", json={"refreshToken": ada["refreshToken"]}, headers=bearer(bob)
        ),
        waits=False,
    )

    assert first.status_code == 204, first.text
    assert second.status_code == 204, second.text
    for tokens in (ada, bob):  # each ended its own session
        me = await client.get("/api/users/me", headers=bearer(tokens))
        assert me.status_code == 401, me.text
        assert me.json()["code"] == "token_revoked"
        assert (await refresh(client, tokens["refreshToken"])).status_code == 401


async def rotated_session(client: httpx.AsyncClient, rotations: int) -> list[str]:
    """A session's refresh tokens, oldest first: the login's, then one per rotation (all
    rotated but the last, the current one)."""
    user = await register(client)
    tokens = [(await login(client, email=user["email"]))["refreshToken"]]
    for _ in range(rotations):
        refreshed = await client.post("/api/auth/refresh", json={"refreshToken": tokens[-1]})
        assert refreshed.status_code == 200, refreshed.text
        tokens.append(refreshed.json()["refreshToken"])
    return tokens


def hold_after_locking(monkeypatch: pytest.MonkeyPatch, token: str) -> Hold:
    """Stop the first refresh of ``token`` right after it locked the token's row."""
    wanted = hash_refresh_token(token)
    return hold_after(
        monkeypatch,
        RefreshTokenRepository,
        "by_hash_for_update",
        lambda token_hash: token_hash == wanted,
    )


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refreshToken": token})


async def family_unrevoked(engine: AsyncEngine, token: str) -> int:
    """How many tokens of ``token``'s family are not revoked."""
    async with engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL AND family_id ="
                " (SELECT family_id FROM refresh_tokens WHERE token_hash = :hash)"
            ),
            {"hash": hash_refresh_token(token)},
        )
        return int(found.scalar_one())


@pytest.mark.parametrize("other", ["another rotated token", "the current token"])
async def test_a_stolen_tokens_reuse_racing_another_refresh_of_its_session_ends_both(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    """An old token's reuse revokes the session while another of its tokens is refreshed.
    Each refresh locked its own token's row first: two rotated tokens' reuses then each
    revoked the family's rows, the other's among them, and waited for each other (one
    aborted, 503 ``database_unavailable``); the current token's refresh waited for nothing
    and was answered 200 with tokens of the session being ended. The reuse is held after
    its token's lock: the other refresh now waits for the session's lock, then finds its
    token revoked (401 ``invalid_refresh_token``)."""
    _, stolen, rotated, current = await rotated_session(client, 3)
    paused = hold_after_locking(monkeypatch, stolen)
    token = rotated if other == "another rotated token" else current

    reused, later = await race(
        engine, paused, refresh(client, stolen), lambda: refresh(client, token)
    )

    assert reused.status_code == 401, reused.text
    assert reused.json()["code"] == "refresh_token_reused"
    assert later.status_code == 401, later.text
    assert later.json()["code"] == "invalid_refresh_token"
    assert await family_unrevoked(engine, current) == 0
    assert (await refresh(client, current)).status_code == 401


async def test_a_stolen_tokens_reuse_racing_a_refresh_revokes_the_token_it_issued(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current token's refresh is held after its token's lock while an old token is
    reused: the reuse waits for it, then revokes the whole session, the token the refresh
    issued meanwhile included (its revocation once left that row out: the statement had
    begun before the row was committed)."""
    _, stolen, current = await rotated_session(client, 2)
    paused = hold_after_locking(monkeypatch, current)

    honest, reused = await race(
        engine, paused, refresh(client, current), lambda: refresh(client, stolen)
    )

    assert honest.status_code == 200, honest.text
    assert reused.status_code == 401, reused.text
    assert reused.json()["code"] == "refresh_token_reused"
    issued = honest.json()["refreshToken"]
    assert await family_unrevoked(engine, issued) == 0
    again = await refresh(client, issued)
    assert again.status_code == 401, again.text
