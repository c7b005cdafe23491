"""HEAD answers as GET would, without the body (api/head_requests.py)."""

from __future__ import annotations

import httpx

from core.settings import Settings
from tests.factories import signed_up


async def test_head_answers_the_status_and_headers_of_get(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/categories", "/api/products?limit=2"):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == got.status_code == 200, (path, head.text)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["x-request-id"].startswith("req_")


async def test_head_of_a_signed_in_resource_checks_the_caller(client: httpx.AsyncClient) -> None:
    _, auth = await signed_up(client)
    me = await client.head("/api/users/me", headers=auth)
    assert me.status_code == 200
    assert me.content == b""
    anonymous = await client.head("/api/users/me")
    assert anonymous.status_code == 401
    assert anonymous.content == b""


async def test_head_of_what_has_no_get_answers_as_get_would(client: httpx.AsyncClient) -> None:
    missing = await client.head("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.content == b""
    post_only = await client.head("/api/auth/login")
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST, OPTIONS"


async def test_head_of_an_event_stream_ends_and_gives_its_slot_back(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A stream answers its headers and ends: more HEADs than a user may hold streams
    open all answer 200, none 429 too_many_streams (nor hangs)."""
    _, auth = await signed_up(client)
    for _ in range(settings.stream_max_per_user + 2):
        head = await client.head("/api/events/stream", headers=auth)
        assert head.status_code == 200, head.text
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""


async def test_head_is_counted_as_head_on_its_route(client: httpx.AsyncClient) -> None:
    await client.head("/health")
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{method="HEAD",route="/health",status="200"}' in metrics
