"""Profiles, password changes, deletion, and who may see or change what."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update

from core.db import create_session_factory, transaction
from core.secrets import jwt_secret
from core.settings import Settings
from models.analytics import AnalyticsEvent
from models.carts import Cart
from models.outbox import OutboxEvent
from models.users import Role, User
from services.tokens import AccessTokens, new_session_id
from services.users import ERASED_NAME, UserService, erased_email
from tests.api.test_customer_lock_order import hold_after
from tests.factories import (
    PASSWORD,
    ClientFactory,
    bearer,
    login,
    promote,
    register,
    signed_up,
    unique_email,
    unique_slug,
)

NEW_PASSWORD = "quiet harbour lantern seventeen"


async def test_a_user_updates_their_profile(client: httpx.AsyncClient) -> None:
    user, headers = await signed_up(client)
    new_email = unique_email("moved")
    response = await client.patch(
        f"/api/users/{user['id']}", headers=headers, json={"name": "Ada K.", "email": new_email}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Ada K."
    assert response.json()["email"] == new_email
    assert (await login(client, email=new_email))["user"]["id"] == user["id"]

    replaced = await client.put(
        f"/api/users/{user['id']}", headers=headers, json={"name": "Ada", "email": new_email}
    )
    assert replaced.status_code == 200
    incomplete = await client.put(f"/api/users/{user['id']}", headers=headers, json={"name": "A"})
    assert incomplete.status_code == 422
    assert {e["field"] for e in incomplete.json()["errors"]} == {"email"}


async def test_a_profile_cannot_take_an_address_longer_than_smtp_carries(
    client: httpx.AsyncClient,
) -> None:
    """64 octets before the @-sign at most (RFC 5321 §4.5.3.1.1), in a change as at
    sign-up: 422 validation_error naming email, and the account keeps its address."""
    user, headers = await signed_up(client)
    too_long = "a" * 65 + "@example.com"
    patched = await client.patch(
        f"/api/users/{user['id']}", headers=headers, json={"email": too_long}
    )
    replaced = await client.put(
        f"/api/users/{user['id']}", headers=headers, json={"name": "Ada", "email": too_long}
    )
    for refused in (patched, replaced):
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error"
        assert [e["field"] for e in refused.json()["errors"]] == ["email"]
    me = await client.get("/api/users/me", headers=headers)
    assert me.json()["email"] == user["email"]


async def test_an_email_someone_else_has_cannot_be_taken(client: httpx.AsyncClient) -> None:
    other = await register(client)
    user, headers = await signed_up(client)
    response = await client.patch(
        f"/api/users/{user['id']}", headers=headers, json={"email": other["email"].upper()}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    here = await login(client, email=user["email"])
    elsewhere = await login(client, email=user["email"])
    path = f"/api/users/{user['id']}"

    # Issue 11: a missing field is 422 and a wrong one 403, never 401 ("sign out").
    missing = await client.patch(path, headers=bearer(here), json={"password": NEW_PASSWORD})
    assert missing.status_code == 422
    assert missing.json()["code"] == "current_password_required"
    wrong = await client.patch(
        path,
        headers=bearer(here),
        json={"password": NEW_PASSWORD, "currentPassword": "not it at all"},
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "current_password_invalid"
    weak = await client.patch(
        path, headers=bearer(here), json={"password": "short", "currentPassword": PASSWORD}
    )
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"

    changed = await client.patch(
        path, headers=bearer(here), json={"password": NEW_PASSWORD, "currentPassword": PASSWORD}
    )
    assert changed.status_code == 200
    # This session carries on; the other one is signed out, refresh token included.
    assert (await client.get("/api/users/me", headers=bearer(here))).status_code == 200
    assert (await client.get("/api/users/me", headers=bearer(elsewhere))).status_code == 401
    refresh = await client.post(
        "/api/auth/refresh", json={"refreshToken": elsewhere["refreshToken"]}
    )
    assert refresh.status_code == 401
    old = await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status_code == 401
    await login(client, email=user["email"], password=NEW_PASSWORD)


async def test_deleting_an_account_anonymises_it_and_ends_its_sessions(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(client)
    await client.post(f"/api/users/{user['id']}/addresses", headers=headers, json=_address())
    response = await client.delete(f"/api/users/{user['id']}", headers=headers)
    assert response.status_code == 204
    assert (await client.get("/api/users/me", headers=headers)).status_code == 401
    relog = await client.post(
        "/api/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert relog.status_code == 401
    # The address is free for a new account.
    await register(client, email=user["email"])

    async with create_session_factory(engine)() as session:
        from models.users import Address, User

        row = await session.get(User, user["id"])
        assert row is not None
        assert row.status == "deleted"
        assert row.name == "Deleted user"
        assert user["email"] not in row.email
        assert row.password_hash.startswith("!")
        addresses = await session.exec(select(Address).where(Address.user_id == user["id"]))
        assert addresses.all() == []


async def test_a_deleted_accounts_still_valid_token_neither_orders_nor_fills_a_cart(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """An access token stays signed and unexpired for its 15 minutes after its account is
    deleted. Another session's is revoked with the session (401 `token_revoked`); one whose
    revocation is not known (say Redis lost it) finds the account deleted (401
    `account_deleted`). Neither writes a cart or an order for the account."""
    user, headers = await signed_up(client)
    other = bearer(await login(client, email=user["email"]))
    unrevoked, _ = AccessTokens(jwt_secret(settings), 900).issue(
        user["id"], Role.CUSTOMER, new_session_id()
    )
    assert (await client.delete(f"/api/users/{user['id']}", headers=headers)).status_code == 204
    order = {
        "cartId": "cart_none",
        "shippingAddress": _address() | {"country": "US"},
        "paymentMethod": {"type": "card", "token": "pm_card_visa"},
    }
    for token, code in (
        (other, "token_revoked"),
        ({"Authorization": f"Bearer {unrevoked}"}, "account_deleted"),
    ):
        added = await client.post(
            "/api/cart/items", headers=token, json={"productId": "prod_none", "quantity": 1}
        )
        assert (added.status_code, added.json()["code"]) == (401, code)
        placed = await client.post("/api/orders", headers=token, json=order)
        assert (placed.status_code, placed.json()["code"]) == (401, code)
    async with create_session_factory(engine)() as session:
        carts = await session.exec(select(Cart).where(Cart.user_id == user["id"]))
        assert carts.all() == []


async def test_registration_writes_its_events_with_the_user(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await register(client)
    async with create_session_factory(engine)() as session:
        outbox = (
            await session.exec(select(OutboxEvent).where(OutboxEvent.aggregate_id == user["id"]))
        ).all()
        analytics = (
            await session.exec(select(AnalyticsEvent).where(AnalyticsEvent.user_id == user["id"]))
        ).all()
    assert [e.type for e in outbox] == ["user.created"]
    assert outbox[0].data["email"] == user["email"]
    assert [e.event for e in analytics] == ["user_created"]
    assert analytics[0].properties == {
        "registrationMethod": "email",
        "userAgent": "pytest-client/1.0",
    }


def _address(**overrides: object) -> dict[str, object]:
    return {
        "name": "Ada Lovelace",
        "street": "123 Main St",
        "city": "Boston",
        "state": "MA",
        "zip": "02101",
        "country": "us",
        "phone": "+1 617 555 0100",
    } | overrides


async def test_the_address_book_keeps_one_default_of_each_kind(client: httpx.AsyncClient) -> None:
    user, headers = await signed_up(client)
    base = f"/api/users/{user['id']}/addresses"
    home = await client.post(
        base, headers=headers, json=_address(isDefaultShipping=True, isDefaultBilling=True)
    )
    assert home.status_code == 201, home.text
    home_body = home.json()
    assert home_body["country"] == "US"
    assert home_body["id"].startswith("addr_")
    work = await client.post(
        base, headers=headers, json=_address(street="1 Office Park", isDefaultShipping=True)
    )
    assert work.status_code == 201
    listed = (await client.get(base, headers=headers)).json()
    flags = {a["street"]: (a["isDefaultShipping"], a["isDefaultBilling"]) for a in listed}
    assert flags == {"123 Main St": (False, True), "1 Office Park": (True, False)}

    patched = await client.patch(
        f"{base}/{home_body['id']}", headers=headers, json={"isDefaultShipping": True}
    )
    assert patched.status_code == 200
    listed = (await client.get(base, headers=headers)).json()
    assert [a["street"] for a in listed if a["isDefaultShipping"]] == ["123 Main St"]

    put = await client.put(
        f"{base}/{work.json()['id']}", headers=headers, json=_address(city="Cambridge")
    )
    assert put.status_code == 200
    assert put.json()["city"] == "Cambridge"
    assert put.json()["isDefaultShipping"] is False

    gone = await client.delete(f"{base}/{home_body['id']}", headers=headers)
    assert gone.status_code == 204
    missing = await client.get(f"{base}/{home_body['id']}", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "address_not_found"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"country": "XX"}, "country"),
        ({"country": "USA"}, "country"),
        ({"street": "   "}, "street"),
        ({"city": ""}, "city"),
        ({"zip": "1" * 21}, "zip"),
        # A US address's ZIP code is five digits (ZIP+4 allowed): stored as given before.
        ({"zip": "Boston"}, "zip"),
        ({"zip": "0210"}, "zip"),
        ({"zip": "02101-12"}, "zip"),
        ({"name": None}, "name"),
        ({"phone": "1" * 33}, "phone"),
    ],
)
async def test_address_validation_names_the_field(
    client: httpx.AsyncClient, overrides: dict[str, object], field: str
) -> None:
    user, headers = await signed_up(client)
    response = await client.post(
        f"/api/users/{user['id']}/addresses", headers=headers, json=_address(**overrides)
    )
    assert response.status_code == 422, response.text
    body = response.json()
    fields = {e["field"] for e in body.get("errors", [])} | {body.get("field")}
    assert field in fields


async def test_a_us_zip_code_is_checked_against_the_whole_address(
    client: httpx.AsyncClient,
) -> None:
    """A change of ZIP code or of country is checked with the field it did not change;
    other countries' postal codes are theirs to format."""
    user, headers = await signed_up(client)
    base = f"/api/users/{user['id']}/addresses"
    london = await client.post(
        base, headers=headers, json=_address(country="GB", state=None, zip="SW1A 1AA")
    )
    assert london.status_code == 201, london.text
    path = f"{base}/{london.json()['id']}"
    moved = await client.patch(path, headers=headers, json={"country": "US", "state": "MA"})
    assert moved.status_code == 422, moved.text
    assert moved.json()["field"] == "zip"
    boston = await client.post(base, headers=headers, json=_address())
    bad_zip = await client.patch(
        f"{base}/{boston.json()['id']}", headers=headers, json={"zip": "MA 02101"}
    )
    assert bad_zip.status_code == 422, bad_zip.text
    assert bad_zip.json()["field"] == "zip"
    plus4 = await client.patch(
        f"{base}/{boston.json()['id']}", headers=headers, json={"zip": " 02101-1234 "}
    )
    assert plus4.status_code == 200, plus4.text
    assert plus4.json()["zip"] == "02101-1234"
    listed = {a["id"]: a["zip"] for a in (await client.get(base, headers=headers)).json()}
    assert listed[london.json()["id"]] == "SW1A 1AA"


async def test_staff_get_404_for_the_address_book_of_no_account(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """Staff may keep anyone's address book, but not one of an account that does not
    exist (a 409 ``address_default_conflict`` from the foreign key, before) or that was
    deleted (its addresses are erased with it; one could be added again, before)."""
    gone, gone_headers = await signed_up(client)
    assert (
        await client.delete(f"/api/users/{gone['id']}", headers=gone_headers)
    ).status_code == 204
    for user_id in ("user_missing", gone["id"]):
        base = f"/api/users/{user_id}/addresses"
        added = await client.post(base, headers=staff, json=_address())
        assert added.status_code == 404, added.text
        assert added.json()["code"] == "user_not_found"
        listed = await client.get(base, headers=staff)
        assert listed.status_code == 404, listed.text
        assert listed.json()["code"] == "user_not_found"
    kept, _ = await signed_up(client)
    added = await client.post(f"/api/users/{kept['id']}/addresses", headers=staff, json=_address())
    assert added.status_code == 201, added.text
    assert added.json()["userId"] == kept["id"]


async def test_access_matrix(client: httpx.AsyncClient) -> None:
    alice, alice_headers = await signed_up(client, name="Alice")
    bob, bob_headers = await signed_up(client, name="Bob")
    bob_address = (
        await client.post(f"/api/users/{bob['id']}/addresses", headers=bob_headers, json=_address())
    ).json()
    b = f"/api/users/{bob['id']}"
    attempts = [
        ("GET", b, None),
        ("PATCH", b, {"name": "Mallory"}),
        ("PUT", b, {"name": "Mallory", "email": unique_email()}),
        ("DELETE", b, None),
        ("GET", f"{b}/addresses", None),
        ("POST", f"{b}/addresses", _address()),
        ("GET", f"{b}/addresses/{bob_address['id']}", None),
        ("PATCH", f"{b}/addresses/{bob_address['id']}", {"city": "Elsewhere"}),
        ("DELETE", f"{b}/addresses/{bob_address['id']}", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, headers=alice_headers, json=body)
        # Not 403: another account's ids must not be confirmable.
        assert response.status_code == 404, (method, path, response.status_code)
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    # Alice's address id under Alice's own path does not reach Bob's address either.
    cross = await client.get(
        f"/api/users/{alice['id']}/addresses/{bob_address['id']}", headers=alice_headers
    )
    assert cross.status_code == 404
    # Nothing of Bob's changed.
    assert (await client.get(b, headers=bob_headers)).json()["name"] == "Bob"
    assert len((await client.get(f"{b}/addresses", headers=bob_headers)).json()) == 1

    staff_only = await client.get("/api/users", headers=alice_headers)
    assert staff_only.status_code == 403
    assert staff_only.json()["code"] == "staff_only"


async def test_staff_can_see_and_manage_accounts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from core.db import transaction
    from models.users import Role
    from services.users import UserRepository

    staff = await register(client, name="Staff Member")
    async with transaction(create_session_factory(engine)) as session:
        row = await UserRepository(session).get(staff["id"])
        assert row is not None
        row.role = Role.STAFF
        session.add(row)
    staff_headers = bearer(await login(client, email=staff["email"]))
    customer, _ = await signed_up(client, name="Customer")

    listing = await client.get("/api/users", headers=staff_headers, params={"limit": 100})
    assert listing.status_code == 200
    page = listing.json()
    assert page["total"] >= 2
    assert page["limit"] == 100
    assert customer["id"] in {u["id"] for u in page["items"]}
    only_staff = await client.get("/api/users", headers=staff_headers, params={"role": "staff"})
    assert {u["role"] for u in only_staff.json()["items"]} == {"staff"}

    seen = await client.get(f"/api/users/{customer['id']}", headers=staff_headers)
    assert seen.status_code == 200
    renamed = await client.patch(
        f"/api/users/{customer['id']}", headers=staff_headers, json={"name": "Renamed by staff"}
    )
    assert renamed.status_code == 200
    # Staff cannot set someone else's password.
    forced = await client.patch(
        f"/api/users/{customer['id']}",
        headers=staff_headers,
        json={"password": NEW_PASSWORD, "currentPassword": PASSWORD},
    )
    assert forced.status_code == 403
    too_big = await client.get("/api/users", headers=staff_headers, params={"limit": 101})
    assert too_big.status_code == 422


async def test_accounts_of_one_instant_page_in_a_stable_order(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Accounts created at the same instant (a bulk import) list by id too: paging through
    them shows each once (a sort of ties alone may answer two pages with one account,
    another never). They are dated after everyone else's, so they lead the list."""
    staff = await register(client, name="Staff Member")
    await promote(engine, staff["id"], Role.STAFF)
    headers = bearer(await login(client, email=staff["email"]))
    ids = [(await register(client, name=f"Bulk {n}"))["id"] for n in range(8)]
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(User)
            .where(col(User.id).in_(ids))
            .values(created_at=datetime(2999, 1, 1, tzinfo=UTC))
        )
    seen: list[str] = []
    for page in range(1, 5):
        answer = await client.get("/api/users", headers=headers, params={"limit": 2, "page": page})
        assert answer.status_code == 200, answer.text
        seen += [u["id"] for u in answer.json()["items"] if u["id"] in ids]
    assert seen == sorted(ids, reverse=True)


async def test_only_admins_manage_staff_accounts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    staff = await register(client, name="Staff")
    admin = await register(client, name="Admin")
    await promote(engine, staff["id"], Role.STAFF)
    await promote(engine, admin["id"], Role.ADMIN)
    staff_h = bearer(await login(client, email=staff["email"]))
    admin_h = bearer(await login(client, email=admin["email"]))
    refused = await client.patch(f"/api/users/{admin['id']}", headers=staff_h, json={"name": "X"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "admin_only"
    assert (await client.delete(f"/api/users/{admin['id']}", headers=staff_h)).status_code == 403
    allowed = await client.patch(f"/api/users/{staff['id']}", headers=admin_h, json={"name": "Ok"})
    assert allowed.status_code == 200


async def test_current_password_guesses_are_throttled(make_client: ClientFactory) -> None:
    client = await make_client(login_max_failures_per_email=2, login_throttle_window_seconds=60)
    user, headers = await signed_up(client)
    statuses = []
    for i in range(3):
        response = await client.patch(
            f"/api/users/{user['id']}",
            headers=headers,
            json={"password": "a brand new long password", "currentPassword": f"guess {i}"},
        )
        statuses.append(response.status_code)
    assert statuses == [403, 403, 429]  # issue 11: a wrong current password is 403


async def test_deleting_an_account_closes_its_cart(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    product = (
        await client.post(
            "/api/products",
            headers=staff,
            json={"sku": unique_slug("del"), "name": "Gone", "price": 100},
        )
    ).json()
    await client.post(
        f"/api/inventory/{product['id']}/adjust", headers=staff, json={"delta": 1, "reason": "in"}
    )
    user, headers = await signed_up(client)
    cart = (
        await client.post("/api/cart/items", headers=headers, json={"productId": product["id"]})
    ).json()
    assert (await client.delete(f"/api/users/{user['id']}", headers=headers)).status_code == 204
    async with create_session_factory(engine)() as session:
        row = (await session.exec(select(Cart).where(Cart.id == cart["id"]))).one()
    assert row.status == "closed"


async def test_a_profile_change_racing_the_erasure_writes_nothing_back(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile change read the account, the erasure committed, and the change then wrote
    the name and email it was given over the erased ones: an erased account named again.
    The change is held after it read the account; the erasure runs whole meanwhile."""
    user, headers = await signed_up(client)
    paused = hold_after(monkeypatch, UserService, "get", lambda user_id: user_id == user["id"])
    changing = asyncio.ensure_future(
        client.patch(
            f"/api/users/{user['id']}",
            headers=headers,
            json={"name": "Ada Again", "email": unique_email("again")},
        )
    )
    await asyncio.wait_for(paused.reached.wait(), 30)
    erased = await client.delete(f"/api/users/{user['id']}", headers=headers)
    assert erased.status_code == 204, erased.text
    paused.release.set()

    changed = await changing
    assert changed.status_code == 404, changed.text
    async with transaction(create_session_factory(engine)) as session:
        row = (await session.exec(select(User).where(User.id == user["id"]))).one()
    assert (row.email, row.name) == (erased_email(user["id"]), ERASED_NAME)
