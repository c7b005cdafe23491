"""Staff's order search: a creation window whose end is not after its start is refused,
as the analytics' windows and the catalogue's price range are, not an empty page."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"),
        ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ("2026-12-01T05:00:00+05:00", "2026-11-30T23:59:59Z"),
    ],
)
async def test_a_window_that_ends_before_it_starts_is_422(
    client: httpx.AsyncClient, staff: dict[str, str], start: str, end: str
) -> None:
    response = await client.get(
        "/api/admin/orders", headers=staff, params={"from": start, "to": end}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_time_range"
    assert body["field"] == "to"


async def test_a_window_that_ends_after_it_starts_is_a_page(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    response = await client.get(
        "/api/admin/orders",
        headers=staff,
        params={"from": "2026-11-30T23:59:59Z", "to": "2026-12-01T05:00:01+05:00"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["page"] == 1
