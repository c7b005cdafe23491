"""POST /api/analytics/track: the seed's body, batches, who may send what, limits."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory
from models.analytics import AnalyticsEvent
from models.analytics_track import SEED_TRACK_EXAMPLE
from tests.factories import ClientFactory, signed_up

TRACK = "/api/analytics/track"


def _visitor() -> str:
    return f"anon_{uuid4().hex[:12]}"


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def _rows(engine: AsyncEngine, **where: str) -> list[AnalyticsEvent]:
    async with create_session_factory(engine)() as session:
        query = select(AnalyticsEvent).order_by(col(AnalyticsEvent.id))
        for name, value in where.items():
            query = query.where(getattr(AnalyticsEvent, name) == value)
        return list((await session.exec(query)).all())


async def test_the_seeds_body_is_accepted_for_the_callers_own_user(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user, headers = await signed_up(client)
    accepted = await client.post(
        TRACK, headers=headers, json=SEED_TRACK_EXAMPLE | {"userId": user["id"]}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"accepted": 1}
    # Without userId the token says who it is; as written, the seed's user_123 is not them.
    assert (await client.post(TRACK, headers=headers, json={"event": "wishlist_add"})).json() == {
        "accepted": 1
    }
    _problem(
        await client.post(TRACK, headers=headers, json=SEED_TRACK_EXAMPLE), 403, "user_mismatch"
    )
    # A guest cannot claim to be someone: a userId needs that user's token.
    refused = await client.post(TRACK, json=SEED_TRACK_EXAMPLE | {"userId": user["id"]})
    _problem(refused, 401, "sign_in_required")
    assert refused.headers["WWW-Authenticate"] == "Bearer"

    await app.state.shop.ingest.flush()
    rows = [r for r in await _rows(engine, user_id=user["id"]) if r.event != "user_created"]
    assert [(r.event, r.person_id) for r in rows] == [
        ("product_view", user["id"]),
        ("wishlist_add", user["id"]),
    ]
    assert rows[0].properties == SEED_TRACK_EXAMPLE["properties"]


async def test_bad_events_are_refused_with_their_own_code(client: httpx.AsyncClient) -> None:
    nested = {"event": "filter_used", "properties": {"filter": {"color": "red"}}}
    too_big = {"event": "note_taken", "properties": {"text": "x" * 4100}}
    # Each with the field as the client sent it (not the union's tag: "event.event").
    cases = [
        ({"event": "Product View"}, "invalid_event_name", "event"),
        ({"event": "x"}, "invalid_event_name", "event"),
        ({"event": "order_complete", "properties": {"total": 1}}, "reserved_event", "event"),
        (nested, "properties_not_flat", "properties"),
        (
            {"event": "filter_used", "properties": {"sizes": [[1, 2]]}},
            "properties_not_flat",
            "properties",
        ),
        (too_big, "properties_too_large", "properties"),
        ({"batch": [{"event": "tick"}] * 101}, "batch_too_large", "batch"),
        ({"batch": []}, "batch_empty", "batch"),
        (
            {"batch": [{"event": "ok_event"}, {"event": "Not-OK"}]},
            "invalid_event_name",
            "batch.1.event",
        ),
    ]
    for body, code, field in cases:
        problem = _problem(await client.post(TRACK, json=body), 422, code)
        assert [e["field"] for e in problem["errors"]] == [field], problem
    # What the database could not store is refused now, not when the batch is written:
    # JSON's non-standard Infinity, and a body that is both an event and a batch.
    infinite = await client.post(
        TRACK,
        content=b'{"event": "zoom", "properties": {"level": Infinity}}',
        headers={"Content-Type": "application/json"},
    )
    problem = _problem(infinite, 422, "invalid_property_value")
    assert [e["field"] for e in problem["errors"]] == ["properties.level"]
    # Text no database column holds (a lone surrogate) is named once: its detail said
    # "properties: properties: not valid Unicode text".
    surrogate = await client.post(
        TRACK,
        content=b'{"event": "zoom", "properties": {"label": "\\ud800"}}',
        headers={"Content-Type": "application/json"},
    )
    problem = _problem(surrogate, 422, "invalid_text")
    assert problem["detail"] == "properties: not valid Unicode text", problem
    assert [e["field"] for e in problem["errors"]] == ["properties"]
    # Read as a batch (it has one), its "event" is a field a batch does not have.
    both = {"event": "zoom", "batch": [{"event": "zoom"}]}
    problem = _problem(await client.post(TRACK, json=both), 422, "unknown_field")
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [("event", "unknown_field")]
    # Flat means scalars and arrays of scalars; up to 4 KB is fine.
    fine = {
        "event": "filter_used",
        "anonymousId": _visitor(),
        "properties": {"sizes": ["m", "l"], "n": 2, "ok": True, "none": None, "t": "x" * 4000},
    }
    assert (await client.post(TRACK, json=fine)).status_code == 202


async def test_a_batch_keeps_near_times_and_replaces_far_ones(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    visitor = _visitor()
    now = datetime.now(UTC)
    two_hours_ago = (now - timedelta(hours=2)).replace(microsecond=0)
    batch = [
        {"event": "page_open", "timestamp": two_hours_ago.isoformat(), "page": "/a"},
        {"event": "page_open", "timestamp": (now - timedelta(days=3)).isoformat(), "page": "/b"},
        {"event": "page_open", "timestamp": (now + timedelta(hours=25)).isoformat(), "page": "/c"},
        {"event": "page_open", "page": "/d", "sessionId": "s1", "referrer": "https://x.test/"},
    ]
    answer = await client.post(TRACK, headers={"X-Anonymous-Id": visitor}, json={"batch": batch})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 4}
    await app.state.shop.ingest.flush()
    after = datetime.now(UTC)
    rows = {r.page or "": r for r in await _rows(engine, anonymous_id=visitor)}
    assert sorted(rows) == ["/a", "/b", "/c", "/d"]
    assert rows["/a"].created_at == two_hours_ago
    for page in ("/b", "/c", "/d"):
        assert now - timedelta(seconds=5) <= rows[page].created_at <= after, page
    assert {r.person_id for r in rows.values()} == {f"anon:{visitor}"}
    assert (rows["/d"].session_id, rows["/d"].referrer) == ("s1", "https://x.test/")
    assert all(r.received_at >= r.created_at for r in rows.values() if r.page != "/c")


async def test_each_caller_has_a_rate_limit(make_client: ClientFactory) -> None:
    client = await make_client(analytics_rate_limit=3, analytics_rate_limit_per_ip=5)
    visitor = _visitor()
    first = await client.post(
        TRACK, json={"batch": [{"event": "tick", "anonymousId": visitor}] * 3}
    )
    assert first.status_code == 202, first.text
    limited = await client.post(TRACK, json={"event": "tick", "anonymousId": visitor})
    problem = _problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert problem["retryAfter"] == int(limited.headers["Retry-After"])
    # Another visitor on the same address has its own count, up to the address's limit.
    other = await client.post(TRACK, json={"event": "tick", "anonymousId": _visitor()})
    assert other.status_code == 202, other.text
    _problem(
        await client.post(TRACK, json={"event": "tick", "anonymousId": _visitor()}),
        429,
        "rate_limited",
    )
    # Signed in, the user is the caller (its own count).
    _, headers = await signed_up(client)
    assert (await client.post(TRACK, headers=headers, json={"event": "tick"})).status_code == 202


async def test_turned_off_it_says_so(make_client: ClientFactory) -> None:
    client = await make_client(analytics_enabled=False)
    answer = await client.post(TRACK, json=SEED_TRACK_EXAMPLE | {"userId": None})
    problem = _problem(answer, 503, "analytics_disabled")
    assert "ANALYTICS_ENABLED" in problem["detail"]


async def test_the_document_shows_the_seeds_body_first(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/openapi.json")).json()
    operation = document["paths"][TRACK]["post"]
    assert operation["summary"] == "Track an event, or a batch of events"
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert next(iter(examples.values()))["value"] == SEED_TRACK_EXAMPLE
    codes = {
        status: set(
            entry["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"][
                "code"
            ]["enum"]
        )
        for status, entry in operation["responses"].items()
        if status.startswith(("4", "5"))
    }
    assert {
        "invalid_event_name",
        "properties_too_large",
        "properties_not_flat",
        "batch_too_large",
    } <= codes["422"]
    assert codes["403"] == {"user_mismatch"}
    assert codes["429"] == {"rate_limited"}
    assert "analytics_disabled" in codes["503"]
    assert "sign_in_required" in codes["401"]


async def test_long_breakdown_inputs_are_written_and_hold_no_event_back(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """The database keeps each event's ``source`` (``utm_source``, else the referrer's
    host), ``categoryId`` and ``productId`` in btree indexes, whose rows hold at most
    2704 bytes. Values that do not compress (well within the 4 KB of properties, or a
    referrer of 2048 characters) made the INSERT fail with "index row size exceeds
    btree maximum": answered 202, never written, and the batch writer retried that batch
    for ever, every later event of the process waiting behind it (then, the buffer
    full, every catalogue read). They are kept cut to 200 characters."""
    rng = random.Random(7)
    noise = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(3900))
    visitor = _visitor()
    batch = [
        {"event": "zoom", "page": "/utm", "properties": {"utm_source": noise[:3500]}},
        {
            "event": "zoom",
            "page": "/ids",
            "properties": {"productId": noise[:1900], "categoryId": noise[1900:3800]},
        },
        # A referrer's host of 2,000 two-byte characters (lower-case: it stays so).
        {"event": "zoom", "page": "/referrer", "referrer": "https://" + "é" * 2000},
        {"event": "zoom", "page": "/after"},
    ]
    answer = await client.post(TRACK, headers={"X-Anonymous-Id": visitor}, json={"batch": batch})
    assert answer.status_code == 202, answer.text
    assert await app.state.shop.ingest.flush() == 4
    rows = {r.page or "": r for r in await _rows(engine, anonymous_id=visitor)}
    assert sorted(rows) == ["/after", "/ids", "/referrer", "/utm"]
    assert rows["/utm"].source == noise[:200].lower()
    assert (rows["/ids"].product_id, rows["/ids"].category_id) == (noise[:200], noise[1900:2100])
    assert rows["/referrer"].source == "é" * 200
    assert rows["/after"].source == "direct"
    # Nothing else was cut: the event keeps its properties as sent.
    assert rows["/utm"].properties == {"utm_source": noise[:3500]}
