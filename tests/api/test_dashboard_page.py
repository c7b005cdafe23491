"""The /dashboard page and its files: served by the API, from the package, no inline code."""

from __future__ import annotations

import re

import httpx

from api.routes.dashboard_page import CONTENT_SECURITY_POLICY
from core.money import _EXPONENTS


async def test_the_page_loads_without_signing_in_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    html = page.text
    # Every script is a file; nothing inline, nothing from another host.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    assert scripts
    for attrs, body in scripts:
        assert 'src="/dashboard/assets/' in attrs
        assert not body.strip()
    for forbidden in ("style=", "http://", "https://"):
        assert forbidden not in html
    for field in ("email", "password"):
        assert f'<label for="{field}">' in html


async def test_every_file_the_page_names_is_served_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/dashboard")).text
    named = set(re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', page))
    script = (await client.get("/dashboard/assets/dashboard.js")).text
    # The modules the main script imports.
    named |= {f"/dashboard/assets/{m}" for m in re.findall(r'from "\./([\w.-]+)"', script)}
    assert {"/dashboard/assets/charts.js", "/dashboard/assets/session.js"} <= named
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in sorted(named):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith(types[path[path.rfind(".") :]]), path
        # Namespace names are not fetched; any other URL would be.
        text = answer.text.replace("http://www.w3.org/2000/svg", "")
        assert "://" not in text, path


async def test_an_unchanged_file_answers_304_and_an_unknown_one_404(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/dashboard/assets/dashboard.css")
    again = await client.get(
        "/dashboard/assets/dashboard.css", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    outside = await client.get("/dashboard/assets/..%2F..%2Fpyproject.toml")
    assert outside.status_code == 404
    for name in ("nothing.js", "index.html", ".hidden.css", "x.py", "static"):
        missing = await client.get(f"/dashboard/assets/{name}")
        assert missing.status_code == 404, name
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "asset_not_found"


async def test_the_page_reads_minor_units_with_the_servers_exponents(
    client: httpx.AsyncClient,
) -> None:
    """The page's table of ISO 4217 exponents is the server's (``core.money``): amounts
    are read in the minor units they were written in. It used Intl's (CLDR's) digits,
    which differ (HUF, IDR, IQD, ...); the browser test checks the page's figures."""
    script = (await client.get("/dashboard/assets/format.js")).text
    table = re.search(r"const EXPONENTS = \{(.*?)\};", script, flags=re.DOTALL)
    assert table is not None
    pairs = re.findall(r"([A-Z]{3}): ([0-9])", table.group(1))
    assert {code: int(e) for code, e in pairs} == _EXPONENTS
    assert len(pairs) == len(_EXPONENTS)
