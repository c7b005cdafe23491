"""The staff dashboard page (``/dashboard``) and its assets, shipped as package data.

The page is static: it signs in against ``POST /api/auth/login`` and reads the analytics
JSON APIs like any other client, so the server only hands out files. Everything it needs
is served from here (no CDN); a strict Content-Security-Policy (no inline script or
style) holds it to that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import HTMLResponse, Response

from api.problems import problem_responses
from core.errors import NotFound

router = APIRouter(prefix="/dashboard", tags=["dashboard"])

ASSET_PACKAGE = "api"
ASSET_DIR = "static/dashboard"
PAGE = "index.html"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only our own files, no inline code: a script injected into the page would not run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def _files() -> dict[str, Asset]:
    """Every file of the page, read once from the installed package."""
    folder = resources.files(ASSET_PACKAGE).joinpath(*ASSET_DIR.split("/"))
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        media_type = "text/html; charset=utf-8" if entry.name == PAGE else MEDIA_TYPES.get(suffix)
        if entry.is_file() and media_type is not None:
            body = entry.read_bytes()
            found[entry.name] = Asset(
                body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            )
    return found


def load_asset(name: str) -> Asset | None:
    """A file of the page by name (``None``: no such file). Only the package's own files
    are looked up, so no name reaches the file system."""
    return _files().get(name)


def _answer(asset: Asset, if_none_match: str | None) -> Response:
    headers = PAGE_HEADERS | {"ETag": asset.etag}
    if if_none_match == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get(
    "",
    summary="The analytics dashboard page (staff sign in on it)",
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The page; its script signs in and reads /api/analytics/*",
            "content": {"text/html": {"example": "<!doctype html><title>Dashboard</title>"}},
        },
        304: {"description": "Not modified since the `ETag` sent in `If-None-Match`"},
    },
)
async def dashboard_page(
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The staff dashboard: headline sales and user figures with growth against the
    previous period, revenue/orders/active-user charts, the funnel, the retention table,
    top products and low stock. Loading it needs no sign-in; its data does (a staff
    account: the page asks for email and password and keeps the token in memory only)."""
    page = load_asset(PAGE)
    if page is None:
        raise RuntimeError("the dashboard page is missing from the installed package")
    return _answer(page, if_none_match)


@router.get(
    "/assets/{name}",
    summary="A file of the dashboard page (script, style sheet, icon)",
    response_class=Response,
    responses={
        200: {
            "description": "The file",
            "content": {
                "text/javascript": {"example": "export function draw() {}"},
                "text/css": {"example": "body { margin: 0 }"},
                "image/svg+xml": {"example": "<svg xmlns='http://www.w3.org/2000/svg'/>"},
            },
        },
        304: {"description": "Not modified since the `ETag` sent in `If-None-Match`"},
        # A name with a "/" in it (even %2F) matches no route: the generic not_found.
        **problem_responses((NotFound, "asset_not_found"), NotFound),
    },
)
async def dashboard_asset(
    name: Annotated[str, Path(max_length=100, examples=["dashboard.js"])],
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """One of the page's own files, by name (`dashboard.js`, `charts.js`,
    `dashboard.css`, `icon.svg`…); any other name answers 404 `asset_not_found`."""
    asset = load_asset(name) if name != PAGE else None
    if asset is None:
        raise NotFound(f"The dashboard has no file {name!r}", code="asset_not_found")
    return _answer(asset, if_none_match)
