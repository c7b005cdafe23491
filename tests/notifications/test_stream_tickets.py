"""A live stream opened without a header: a browser's ``EventSource`` cannot send
``Authorization``, so it opens ``?ticket=`` from ``POST /api/events/stream-tickets``.
Every rule of a Bearer-opened stream holds for it (the token's revocation and expiry, the
per-user cap, ``Last-Event-ID``, staff following another customer's order), and a ticket
opens one stream only: spent by its first use, then that stream's reconnects' alone.
Over real HTTP (an SSE response never ends for an in-process transport)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.problems import entry_codes
from cli.stack.process import free_port
from core.secrets import jwt_secret
from core.settings import Settings
from models.users import Role
from services.stream_tickets import PREFIX, StreamTickets
from services.tokens import AccessTokens, new_session_id
from tests.api.test_order_long_poll import placed_order
from tests.factories import bearer, login, promote, register, signed_up
from tests.live import live_api
from tests.notifications.helpers import next_notification, sse_events, until_it_ends, write

# Revocation (and a ticket taken over) is asked this often while a stream is open.
CHECK_SECONDS = 0.2
CAP = 2
STREAM = "/api/events/stream"
NO_NOTIFICATION_YET = "ntf_" + "0" * 26


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[str]:
    quick = Settings.model_validate(
        settings.model_dump()
        | {
            "shop_api_port": free_port(),
            "stream_token_check_seconds": CHECK_SECONDS,
            "stream_max_per_user": CAP,
        }
    )
    async with live_api(quick) as base_url:
        yield base_url


@pytest.fixture
async def http(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        yield client


async def ticket_for(
    http: httpx.AsyncClient, headers: dict[str, str], path: str = STREAM, **extra: Any
) -> dict[str, Any]:
    answer = await http.post(
        "/api/events/stream-tickets", json={"path": path, **extra}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


async def test_a_ticket_opens_the_notification_stream_without_a_header(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(http)
    # Before: the stream wanted `Authorization`, which an EventSource cannot send.
    _refused(await http.get(STREAM), "unauthenticated")
    key = {"Idempotency-Key": "one-key-for-two-tickets"}
    answer = await http.post(
        "/api/events/stream-tickets", json={"path": STREAM}, headers=headers | key
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    ticket = answer.json()
    assert ticket["path"] == STREAM
    assert ticket["ticket"].startswith("stk_")
    assert ticket["url"] == f"{STREAM}?ticket={ticket['ticket']}"
    assert 0 < ticket["expiresIn"] <= 60
    # A credential is never stored and replayed by Idempotency-Key: a new one each time.
    again = await http.post(
        "/api/events/stream-tickets", json={"path": STREAM}, headers=headers | key
    )
    assert again.status_code == 201
    assert again.json()["ticket"] != ticket["ticket"]
    assert "idempotent-replayed" not in again.headers

    async with http.stream("GET", ticket["url"]) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        assert (await anext(events)).comment == "connected"
        written = await write(engine, user["id"], "Pushed to an EventSource")
        assert (await next_notification(events)).json()["id"] == written


async def test_a_ticket_is_spent_by_its_first_use_then_only_its_streams_reconnects_use_it(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(http)
    url = (await ticket_for(http, headers))["url"]
    async with http.stream("GET", url) as stream:
        events = sse_events(stream)
        connected = await anext(events)
        assert connected.id == NO_NOTIFICATION_YET
    # Another tab, a copied URL: a second open is no reconnect (no Last-Event-ID).
    _refused(await http.get(url), "stream_ticket_used")
    # The EventSource reconnects by itself: the same URL, with the last id it got.
    missed = await write(engine, user["id"], "While it was away")
    async with http.stream("GET", url, headers={"Last-Event-ID": connected.id}) as stream:
        assert stream.status_code == 200
        assert (await next_notification(sse_events(stream))).id == missed


async def test_a_polyfill_reconnects_with_the_last_event_id_in_the_query(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """``event-source-polyfill`` reconnects to the same URL with ``&lastEventId=`` rather
    than a header: that is a reconnect, which the spent ticket takes, resuming there."""
    user, headers = await signed_up(http)
    url = (await ticket_for(http, headers))["url"]
    async with http.stream("GET", url) as stream:
        connected = await anext(sse_events(stream))
        assert connected.id == NO_NOTIFICATION_YET
    missed = await write(engine, user["id"], "While the polyfill was away")
    async with http.stream("GET", f"{url}&lastEventId={connected.id}") as stream:
        assert stream.status_code == 200, await stream.aread()
        assert (await next_notification(sse_events(stream))).id == missed


async def test_a_head_checks_a_ticket_without_spending_or_taking_it_over(
    http: httpx.AsyncClient, engine: AsyncEngine, redis: Redis
) -> None:
    """A link prefetcher or a proxy sending ``HEAD`` to the ticket's URL gets what the
    ``GET`` would (200 and the stream's headers, no body; a bad ticket's 401), and the
    EventSource still opens with the ticket afterwards (before, the HEAD spent it:
    ``stream_ticket_used``). A HEAD with a last event id takes no ticket over either."""
    user, headers = await signed_up(http)
    order_id = await placed_order(engine, user)
    for path in (STREAM, f"/api/orders/{order_id}/events"):
        ticket = await ticket_for(http, headers, path)
        for _ in range(2):
            head = await http.head(ticket["url"])
            assert head.status_code == 200, (path, head.text)
            assert head.headers["content-type"].startswith("text/event-stream")
            assert head.content == b""
        async with http.stream("GET", ticket["url"]) as stream:
            assert stream.status_code == 200, (path, await stream.aread())
            first = await anext(sse_events(stream))
            assert first.id is not None
            key = f"{PREFIX}:{hashlib.sha256(ticket['ticket'].encode()).hexdigest()}"
            holder = await redis.hget(key, "holder")
            reconnect = await http.head(ticket["url"], headers={"Last-Event-ID": first.id})
            assert reconnect.status_code == 200, reconnect.text
            assert await redis.hget(key, "holder") == holder  # the open stream keeps it
        # Spent by the GET: a HEAD without a last event id is refused as a GET would be.
        spent = await http.head(ticket["url"])
        assert (spent.status_code, spent.content) == (401, b"")
    wrong = await http.head(STREAM, params={"ticket": "stk_" + "A" * 43})
    assert (wrong.status_code, wrong.content) == (401, b"")


async def test_a_reconnect_takes_the_ticket_over_and_the_older_stream_ends(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """The newest connection wins: a reconnect that comes before the server noticed the
    old connection gone is never refused, and the ticket never serves two streams."""
    user, headers = await signed_up(http)
    url = (await ticket_for(http, headers))["url"]
    async with http.stream("GET", url) as first:
        older = sse_events(first)
        connected = await anext(older)
        assert connected.id is not None
        async with http.stream("GET", url, headers={"Last-Event-ID": connected.id}) as second:
            assert second.status_code == 200
            newer = sse_events(second)
            assert (await anext(newer)).comment == "connected"
            await until_it_ends(older)
            written = await write(engine, user["id"], "To the newer stream")
            assert (await next_notification(newer)).id == written


async def test_a_ticket_for_one_stream_opens_no_other_and_bad_tickets_are_refused(
    http: httpx.AsyncClient, engine: AsyncEngine, redis: Redis, settings: Settings
) -> None:
    user, headers = await signed_up(http)
    order_id = await placed_order(engine, user)
    for_notifications = (await ticket_for(http, headers))["ticket"]
    _refused(
        await http.get(f"/api/orders/{order_id}/events", params={"ticket": for_notifications}),
        "stream_ticket_wrong_stream",
    )
    # Refused on the wrong path, it still opens its own.
    async with http.stream("GET", STREAM, params={"ticket": for_notifications}) as stream:
        assert stream.status_code == 200
    _refused(await http.get(STREAM, params={"ticket": "stk_" + "A" * 43}), "invalid_stream_ticket")
    _refused(
        await http.get(STREAM, params={"ticket": "eyJhbGciOi.not.a-ticket"}),
        "invalid_stream_ticket",
    )
    # One not used within its time (a millisecond here; sixty seconds by default).
    tokens = AccessTokens(jwt_secret(settings), 900)
    _, claims = tokens.issue(user["id"], Role.CUSTOMER, new_session_id())
    late = await StreamTickets(redis, ttl_seconds=0.001).mint(claims, STREAM)
    await asyncio.sleep(0.05)
    _refused(await http.get(STREAM, params={"ticket": late.ticket}), "stream_ticket_expired")


async def test_asking_for_a_ticket_names_a_stream_the_caller_may_open(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, _ = await signed_up(http)
    order_id = await placed_order(engine, owner)
    _, stranger = await signed_up(http)
    refused = await http.post(
        "/api/events/stream-tickets",
        json={"path": f"/api/orders/{order_id}/events"},
        headers=stranger,
    )
    assert (refused.status_code, refused.json()["code"]) == (404, "order_not_found")
    for path in ("/api/notifications", "/api/events/stream/../orders", f"/api/orders/{order_id}"):
        wrong = await http.post("/api/events/stream-tickets", json={"path": path}, headers=stranger)
        assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_stream_path"), path
    not_an_id = await http.post(
        "/api/events/stream-tickets",
        json={"path": STREAM, "lastEventId": "ord_not_a_notification"},
        headers=stranger,
    )
    assert (not_an_id.status_code, not_an_id.json()["code"]) == (422, "invalid_last_event_id")
    anonymous = await http.post("/api/events/stream-tickets", json={"path": STREAM})
    _refused(anonymous, "unauthenticated")
    # A ticket is no access token: it cannot ask for another.
    ticket = (await ticket_for(http, stranger))["ticket"]
    _refused(
        await http.post(
            "/api/events/stream-tickets",
            json={"path": STREAM},
            headers={"Authorization": f"Bearer {ticket}"},
        ),
        "invalid_token",
    )


async def test_signing_out_ends_a_ticket_stream_and_its_reconnect_is_refused(
    http: httpx.AsyncClient,
) -> None:
    _, headers = await signed_up(http)
    url = (await ticket_for(http, headers))["url"]
    async with http.stream("GET", url) as stream:
        events = sse_events(stream)
        connected = await anext(events)
        assert connected.id is not None
        assert (await http.post("/api/auth/logout", headers=headers)).status_code == 204
        await until_it_ends(events)
    _refused(await http.get(url, headers={"Last-Event-ID": connected.id}), "token_revoked")


async def test_a_ticket_stream_ends_with_its_token_and_a_new_ticket_resumes_from_its_last_event_id(
    http: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    user = await register(http)
    # A token that expires two seconds from now (the API's own are good for minutes).
    token, _ = AccessTokens(jwt_secret(settings), 2).issue(
        user["id"], Role.CUSTOMER, new_session_id()
    )
    url = (await ticket_for(http, {"Authorization": f"Bearer {token}"}))["url"]
    async with http.stream("GET", url) as stream:
        events = sse_events(stream)
        assert (await anext(events)).comment == "connected"
        seen = await write(engine, user["id"], "While the token is good")
        assert (await next_notification(events)).id == seen
        await until_it_ends(events)
    _refused(await http.get(url, headers={"Last-Event-ID": seen}), "token_expired")
    # The page signs in again and asks for a new ticket from the last id it saw: a new
    # EventSource sends no Last-Event-ID, the ticket carries it.
    missed = await write(engine, user["id"], "While the token was expired")
    fresh = bearer(await login(http, email=user["email"]))
    resumed = (await ticket_for(http, fresh, lastEventId=seen))["url"]
    async with http.stream("GET", resumed) as stream:
        assert (await next_notification(sse_events(stream))).id == missed


async def test_ticket_streams_count_toward_the_per_user_cap(http: httpx.AsyncClient) -> None:
    _, headers = await signed_up(http)
    urls = [(await ticket_for(http, headers))["url"] for _ in range(CAP + 1)]
    async with http.stream("GET", urls[0]) as first, http.stream("GET", urls[1]) as second:
        assert (first.status_code, second.status_code) == (200, 200)
        over = await http.get(urls[2])
        assert (over.status_code, over.json()["code"]) == (429, "too_many_streams")


async def test_staff_follow_a_customers_order_with_a_ticket_until_demoted(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    customer, _ = await signed_up(http)
    order_id = await placed_order(engine, customer)  # pending: its stream would not settle
    member = await register(http, name="Staff Member")
    await promote(engine, member["id"], Role.STAFF)
    headers = bearer(await login(http, email=member["email"]))
    path = f"/api/orders/{order_id}/events"
    url = (await ticket_for(http, headers, path))["url"]
    async with http.stream("GET", url) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        opened = await anext(events)
        assert (opened.event, opened.json()["id"]) == ("order", order_id)
        await promote(engine, member["id"], Role.CUSTOMER)
        await until_it_ends(events)
    again = await http.get(url, headers={"Last-Event-ID": opened.id or ""})
    assert (again.status_code, again.json()["code"]) == (404, "order_not_found")


def test_the_ticket_is_a_declared_query_parameter_of_both_streams(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path in (STREAM, "/api/orders/{order_id}/events"):
        operation = paths[path]["get"]
        names = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert ("query", "ticket") in names, path
        codes = entry_codes(operation["responses"]["401"])
        assert {"invalid_stream_ticket", "stream_ticket_used"} <= codes, codes
        # The Bearer token may be left out: the ticket stands in for it.
        assert {} in operation["security"]
