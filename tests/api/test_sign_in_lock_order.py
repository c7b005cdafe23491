"""Sign-in that upgrades the password's hash and merges a guest cart, racing the same
customer's add-to-cart: both go through, neither is aborted as a deadlock.

Add-to-cart locks the customer's cart and share-locks the account for its
``add_to_cart`` event (``AnalyticsRepository.erased_accounts(hold=True)``). Sign-in
rewrote the account's row (the rehash) and then locked the customer's cart to merge the
guest's into it: the opposite order, and PostgreSQL aborted one of the two (40P01). Both
now take the account's row first (``core.db.locked``; add-to-cart holds it before the
cart, ``CartService.hold_owner``, and sign-in locks it to be written before the carts,
``AuthService.authenticate``). Made deterministic: the add is held once it holds both
rows; sign-in is let run until it waits on a lock; the add is let go. The other pairs are
``tests/api/test_customer_lock_order.py``'s."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services import passwords
from services.analytics import AnalyticsRepository
from tests.api.test_customer_lock_order import make_rehash_due, stored_hash
from tests.events.erasure_race import Hold
from tests.factories import PASSWORD, signed_up, stocked_product
from tests.lock_waits import waiting_on_locks


async def test_sign_in_with_a_rehash_and_a_merge_racing_add_to_cart_both_go_through(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, auth = await signed_up(client)
    product = await stocked_product(client, staff, price=1500, stock=20)
    line = {"productId": product["id"], "quantity": 1}
    guest = await client.post("/api/cart/items", json=line)
    assert guest.status_code in (200, 201), guest.text
    cart_token = guest.json()["cartToken"]
    mine = await client.post("/api/cart/items", json=line, headers=auth)
    assert mine.status_code in (200, 201), mine.text
    await make_rehash_due(engine, user["id"])

    paused = Hold()
    erased_accounts = AnalyticsRepository.erased_accounts

    async def held(
        self: AnalyticsRepository, user_ids: list[str], *, hold: bool = False
    ) -> set[str]:
        if hold and user["id"] in user_ids and not paused.reached.is_set():
            await paused.point()  # the add holds the customer's account and cart
        return await erased_accounts(self, user_ids, hold=hold)

    monkeypatch.setattr(AnalyticsRepository, "erased_accounts", held)

    adding = asyncio.ensure_future(client.post("/api/cart/items", json=line, headers=auth))
    await asyncio.wait_for(paused.reached.wait(), 30)
    signing_in = asyncio.ensure_future(
        client.post(
            "/api/auth/login",
            json={"email": user["email"], "password": PASSWORD},
            headers={"X-Cart-Token": cart_token},
        )
    )
    await waiting_on_locks(engine, 1)
    paused.release.set()
    added, signed_in = await asyncio.gather(adding, signing_in)

    assert added.status_code in (200, 201), added.text
    assert signed_in.status_code == 200, signed_in.text
    assert not passwords.needs_rehash(await stored_hash(engine, user["id"]))  # kept
    cart = await client.get("/api/cart", headers=auth)
    quantities: list[Any] = [item["quantity"] for item in cart.json()["items"]]
    assert quantities == [3]  # the user's two adds and the guest's line, merged
